"""predict and evaluate stream a folder a chunk at a time: output starts before the folder is read, order
is kept, unreadable files are skipped in place, and results equal the one-batch path."""

from __future__ import annotations

from captcha_crnn.cli.main import main
from captcha_crnn.data.labels import collect
from captcha_crnn.errors import ImageError
from captcha_crnn.inference.evaluate import evaluate
from captcha_crnn.inference.recognizer import Recognizer


def test_stream_reads_lazily_a_chunk_at_a_time(trained_run, captcha_dir):
    rec = Recognizer.load(trained_run / "model.pt")
    files = sorted(captcha_dir.glob("*.png"))[:10]
    pulled = []

    def sources():
        for f in files:
            pulled.append(f)
            yield f

    stream = rec.stream(sources(), chunk=4)
    first = next(stream)
    assert first[0] == files[0] and len(pulled) == 4  # one chunk read, not the folder
    rest = list(stream)
    assert [src for src, _ in [first, *rest]] == files
    one_batch = rec.log_probs([rec.preprocess(f) for f in files])
    for (_, streamed), whole in zip([first, *rest], one_batch):
        assert streamed.shape == whole.shape


def test_unreadable_files_are_skipped_in_place(trained_run, captcha_dir, tmp_path):
    rec = Recognizer.load(trained_run / "model.pt")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    files = [*sorted(captcha_dir.glob("*.png"))[:3], bad, sorted(captcha_dir.glob("*.png"))[3]]
    out = list(rec.stream(files, chunk=2))
    assert [src for src, _ in out] == files
    assert isinstance(out[3][1], ImageError) and not any(isinstance(lp, ImageError) for _, lp in out[:3])


def test_predict_folder_in_small_chunks_prints_every_file_in_order(
    trained_run, captcha_dir, capsys, monkeypatch
):
    monkeypatch.setattr(Recognizer.stream, "__defaults__", (5,))
    assert main(["predict", str(trained_run / "model.pt"), str(captcha_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in sorted(captcha_dir.glob("*.png"))]


def test_streamed_evaluation_equals_scoring_all_at_once(trained_run, captcha_dir, monkeypatch):
    rec = Recognizer.load(trained_run / "model.pt")
    items = collect(captcha_dir)
    whole = evaluate(rec, items, [rec.preprocess(it.path) for it in items])
    monkeypatch.setattr(Recognizer.stream, "__defaults__", (7,))
    streamed = evaluate(rec, items)
    # the same readings; confidences agree to float32 rounding (a batch of 7 runs other kernels than 48)
    assert [(r["file"], r["prediction"]) for r in streamed.records] == [
        (r["file"], r["prediction"]) for r in whole.records
    ]
    assert all(abs(a["confidence"] - b["confidence"]) < 1e-4 for a, b in zip(streamed.records, whole.records))
    assert abs(streamed.loss - whole.loss) < 1e-5


def test_an_image_reads_the_same_alone_as_beside_wider_ones():
    import numpy as np

    rec = Recognizer.load("general")  # its input keeps each image's width: widths differ in a batch
    rng = np.random.default_rng(0)
    narrow, wide = (rng.integers(0, 256, (48, w, 3), dtype=np.uint8) for w in (96, 320))
    alone = rec.log_probs([narrow])[0]
    beside = rec.log_probs([wide, narrow, wide])
    assert beside[1].shape == alone.shape
    np.testing.assert_allclose(beside[1], alone, atol=1e-5)
    np.testing.assert_allclose(beside[0], beside[2], atol=1e-5)

    calls = []  # images of near widths still go through together
    backend = rec.backend
    rec.backend = lambda batch: calls.append(batch.shape) or backend(batch)
    rec.log_probs([rng.integers(0, 256, (48, w, 3), dtype=np.uint8) for w in (104, 97, 112, 100, 102)])
    assert calls == [(4, 3, 48, 104), (1, 3, 48, 112)]
