"""The labelling workbench through its JSON API: every route, atomic writes, resume, order, bad input,
and the retrain job."""

import csv
import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from captcha_crnn import Recognizer
from captcha_crnn.errors import CaptchaCrnnError, LabelError
from captcha_crnn.labelling.app import create_label_app
from captcha_crnn.labelling.retrain import Retrainer
from captcha_crnn.labelling.store import LabelStore, read_rows
from captcha_crnn.labelling.workbench import Suggestion, Workbench


@pytest.fixture
def folder(tmp_path, captcha_dir):
    """24 unlabelled images (the labels stay aside, in `truth`), plus one broken file."""
    out = tmp_path / "todo"
    out.mkdir()
    rows = list(csv.reader((captcha_dir / "labels.csv").open()))[1:25]
    for name, _ in rows:
        shutil.copy(captcha_dir / name, out / name)
    (out / "zz-broken.png").write_bytes(b"not a png")
    return out


def truth(captcha_dir) -> dict[str, str]:
    return dict(list(csv.reader((captcha_dir / "labels.csv").open()))[1:])


def open_bench(folder, model=None, **kwargs):
    store = LabelStore(folder / "labels.csv", folder).open()
    recognizer = Recognizer.load(model) if model else None
    bench = Workbench(folder, store, recognizer, **kwargs)
    bench.start()
    return bench


def finish(bench):
    """Stop the scoring thread and release the labels file, as the command does on exit."""
    bench.stop()
    bench.store.close()


def wait_scored(bench, deadline=30.0):
    stop = time.monotonic() + deadline
    while len(bench.suggestions) + len(bench.broken) < len(bench.files):
        assert time.monotonic() < stop, "scoring did not finish"
        time.sleep(0.05)


def test_label_save_resume_and_csv_format(folder, captcha_dir):
    bench = open_bench(folder, order="name", charset="0123456789")
    with TestClient(create_label_app(bench)) as client:
        first = client.get("/api/next").json()
        assert first["file"] == sorted(p.name for p in folder.glob("*.png"))[0]
        assert first["suggestion"] is None and first["labelled"] == 0 and first["total"] == 25
        assert len(first["upcoming"]) == 4 and first["file"] not in first["upcoming"]
        label = truth(captcha_dir)[first["file"]]
        saved = client.post("/api/label", json={"file": first["file"], "label": label})
        assert saved.status_code == 200 and saved.json()["status"] == "labelled"
        assert (
            client.get("/api/image", params={"file": first["file"]}).content
            == (folder / first["file"]).read_bytes()
        )
        second = client.get("/api/next").json()
        assert second["file"] != first["file"] and second["labelled"] == 1
    # written at once, atomically (no temporary file left), in the format `train --labels` reads
    assert [f.name for f in folder.iterdir() if f.name.endswith(".tmp")] == []
    rows = list(csv.reader((folder / "labels.csv").open()))
    assert rows == [["file", "label", "status", "suggestion"], [first["file"], label, "labelled", ""]]
    finish(bench)
    resumed = open_bench(folder, order="name")  # a restart continues where it stopped
    assert resumed.next()["file"] == second["file"] and resumed.counts()["labelled"] == 1
    finish(resumed)


def test_the_page_sees_light_glyphs_on_a_transparent_canvas_as_the_model_reads_them(folder):
    from PIL import Image

    light = Image.new("RGBA", (60, 20), (0, 0, 0, 0))
    light.paste((250, 250, 250, 255), (10, 5, 50, 15))  # white ink for a dark page
    light.save(folder / "light.png")
    bench = open_bench(folder, order="name", charset="0123456789")
    with TestClient(create_label_app(bench)) as client:
        shown = client.get("/api/image", params={"file": "light.png"})
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
        assert shown.content != (folder / "light.png").read_bytes()
        pixels = np.asarray(Image.open(io.BytesIO(shown.content)).convert("L"))
        assert pixels[10, 30] == 0 and pixels[1, 1] == 255  # dark ink on white, where the glyphs are
        broken = client.get("/api/image", params={"file": "zz-broken.png"})  # served as it is
        assert broken.status_code == 200 and broken.content == b"not a png"
    finish(bench)


def test_bad_input_is_refused_with_the_reason(folder):
    bench = open_bench(folder, order="name", charset="0123456789")
    with TestClient(create_label_app(bench)) as client:
        file = client.get("/api/next").json()["file"]
        for bad in ("12a4", "12 4", ""):
            r = client.post("/api/label", json={"file": file, "label": bad})
            assert r.status_code == 422, bad
        assert "'a'" in client.post("/api/label", json={"file": file, "label": "12a4"}).json()["detail"]
        for missing in ("nope.png", "../labels.csv", "zz-broken.png/.."):
            assert client.post("/api/label", json={"file": missing, "label": "1234"}).status_code == 404
            assert client.get("/api/image", params={"file": missing}).status_code == 404
        malformed = {  # FastAPI's own refusals, as the one line every other error is
            b'{"file": "%s", "label": "ab\\ud80012"}' % file.encode(): "label: ",  # a lone surrogate
            b"": "body: ",
            b"not json": "body: ",
        }
        for body, start in malformed.items():
            r = client.post("/api/label", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422 and r.json()["detail"].startswith(start), (body, r.text)
        as_text = client.post("/api/label", content=b"{}", headers={"content-type": "text/plain"})
        assert as_text.status_code == 422 and "Content-Type: application/json" in as_text.json()["detail"]
        assert not (folder / "labels.csv").exists()  # nothing refused was written
        # the unreadable file, once met, is listed and never offered
        assert client.get("/api/item", params={"file": "zz-broken.png"}).status_code == 200
        status = client.get("/api/status").json()
        assert list(status["unreadable_files"]) == ["zz-broken.png"] and status["total"] == 24
        assert "zz-broken.png" not in bench.queue()
    with pytest.raises(CaptchaCrnnError, match="another"):  # a second workbench on the same labels
        LabelStore(folder / "labels.csv").open()
    finish(bench)


def test_a_label_the_file_could_not_take_is_not_counted_as_saved(folder, monkeypatch):
    bench = open_bench(folder, order="name", charset="0123456789")
    with TestClient(create_label_app(bench)) as client:
        file = client.get("/api/next").json()["file"]

        def full_disk(path, text):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("captcha_crnn.labelling.store.atomic_write_text", full_disk)
        for saving in (("/api/label", {"file": file, "label": "1234"}), ("/api/unreadable", {"file": file})):
            r = client.post(*saving[:1], json=saving[1])
            assert r.status_code == 500
            assert r.json()["detail"].endswith(
                "labels.csv: cannot write (No space left on device); the label is not saved"
            )
        assert client.get("/api/next").json()["file"] == file  # still to do
        assert client.get("/api/status").json()["labelled"] == 0
        monkeypatch.undo()
        assert client.post("/api/label", json={"file": file, "label": "1234"}).status_code == 200
        assert read_rows(folder / "labels.csv", folder)[0][file].label == "1234"
    finish(bench)


def test_a_labels_file_listing_an_image_twice_is_refused_not_rewritten(folder):
    name = sorted(p.name for p in folder.glob("*.png"))[0]
    text = f"file,label\n{name},1234\n{name},9999\n"
    (folder / "labels.csv").write_text(text)
    with pytest.raises(CaptchaCrnnError, match=f"row 2: {name} is listed again, as '9999'"):
        LabelStore(folder / "labels.csv", folder).open()
    assert (folder / "labels.csv").read_text() == text
    assert not (folder / ".labels.csv.lock").exists()  # a start that fails leaves nothing behind


def test_labels_in_a_file_that_is_no_folder_are_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CaptchaCrnnError, match="afile: not a folder"):
        LabelStore(tmp_path / "afile" / "labels.csv", tmp_path).open()


def test_rows_for_missing_files_are_kept_and_reported(folder):
    (folder / "labels.csv").write_text("file,label\ngone.png,9999\n")
    bench = open_bench(folder, order="name")
    assert bench.missing == ["gone.png"]
    file = bench.next()["file"]
    bench.label(file, "1234")
    assert read_rows(folder / "labels.csv", folder)[0]["gone.png"].label == "9999"
    finish(bench)


def test_skip_unreadable_and_back(folder):
    bench = open_bench(folder, order="name")
    with TestClient(create_label_app(bench)) as client:
        first = client.get("/api/next").json()["file"]
        assert client.post("/api/skip", json={"file": first}).status_code == 200
        second = client.get("/api/next").json()["file"]
        assert second != first
        assert client.post("/api/unreadable", json={"file": second}).json()["status"] == "unreadable"
        item = client.get("/api/item", params={"file": second}).json()
        assert item["status"] == "unreadable" and item["label"] == ""
        queue = bench.queue()
        assert queue[-1] == first and second not in queue  # skipped: last; unreadable: out
        assert client.get("/api/status").json()["unreadable"] == 1
    assert read_rows(folder / "labels.csv", folder)[0][second].status == "unreadable"
    finish(bench)


def test_confidence_order_puts_the_least_certain_first(folder, trained_run):
    model = trained_run / "model.pt"
    bench = open_bench(folder, model=model)
    wait_scored(bench)
    rec = Recognizer.load(model)
    files = sorted(p.name for p in folder.glob("*.png") if p.name != "zz-broken.png")
    confidence = {f: rec.predict(folder / f).confidence for f in files}
    first = bench.next()
    assert first["file"] == min(files, key=confidence.get)
    assert first["confidence"] == pytest.approx(confidence[first["file"]], abs=1e-5)
    assert first["suggestion"] == rec.predict(folder / first["file"]).text
    assert "zz-broken.png" in bench.broken
    finish(bench)


def test_accepted_suggestions_are_counted(folder, reading_model):
    bench = open_bench(folder, model=reading_model, order="name")
    item = bench.next()
    assert item["suggestion"]
    bench.label(item["file"], item["suggestion"])
    other = bench.next()
    bench.label(other["file"], other["suggestion"] + "7")
    counts = bench.counts()
    assert counts["labelled"] == 2 and counts["accepted"] == 1
    finish(bench)


def test_a_label_is_compared_with_the_suggestion_the_user_saw(folder, reading_model):
    """A retrain may change the model's reading while an image is on screen: Enter accepts what was shown."""
    bench = open_bench(folder, model=reading_model, order="name")
    with TestClient(create_label_app(bench)) as client:
        item = client.get("/api/next").json()
        shown = "1" if item["suggestion"] != "1" else "2"  # what an older model read
        saved = client.post("/api/label", json={"file": item["file"], "label": shown, "suggestion": shown})
        assert saved.json()["accepted"] is True
        other = client.get("/api/next").json()  # without one: the model's current reading
        plain = client.post("/api/label", json={"file": other["file"], "label": shown})
        assert plain.json()["accepted"] is (shown == other["suggestion"])
    rows = read_rows(folder / "labels.csv", folder)[0]
    assert rows[item["file"]].suggestion == shown and rows[other["file"]].suggestion == other["suggestion"]
    finish(bench)


def test_review_flags_disagreements_and_is_read_only(folder, reading_model):
    bench = open_bench(folder, model=reading_model, order="name")
    files = bench.queue()[:3]
    for f in files[:2]:
        bench.label(f, bench.suggestion(f).text)  # agrees
    bench.label(files[2], "0000000")  # a typo the model cannot agree with
    with TestClient(create_label_app(bench, review=True)) as client:
        listed = client.get("/api/review").json()
        assert listed[0]["file"] == files[2] and listed[0]["disagrees"]
        assert len(listed) == 3
        assert client.post("/api/label", json={"file": files[0], "label": "1"}).status_code == 403
    finish(bench)


def test_review_puts_the_most_confident_disagreement_first(folder):
    bench = open_bench(folder, order="name")
    files = bench.queue()[:3]
    for f, label, reading, confidence in zip(files, "abc", "xyc", (0.6, 0.99, 0.9)):
        bench.label(f, label)
        bench.suggestions[f] = Suggestion(reading, confidence)  # as if a model had read them
    listed = bench.review()
    assert [item["file"] for item in listed] == [files[1], files[0], files[2]]
    assert [item["disagrees"] for item in listed] == [True, True, False]
    assert listed[0]["confidence"] == 0.99
    finish(bench)


def test_retrain_job_fine_tunes_and_refreshes_the_suggestions(folder, captcha_dir, trained_run, tmp_path):
    bench = open_bench(folder, model=trained_run / "model.pt", order="name")
    retrainer = Retrainer(folder, tmp_path / "runs")
    app = create_label_app(bench, retrainer, str(trained_run / "model.pt"))
    labels = truth(captcha_dir)
    with TestClient(app) as client:
        assert client.post("/api/retrain").status_code == 422  # not JSON: a cross-site form cannot start it
        too_few = client.post("/api/retrain", json={})
        assert too_few.status_code == 409 and "at least 20" in too_few.json()["detail"]
        for f in bench.queue()[:20]:
            assert client.post("/api/label", json={"file": f, "label": labels[f]}).status_code == 200
        retrainer.start(bench.labelled(), str(trained_run / "model.pt"), minutes=0.1)
        assert client.get("/api/retrain").json()["state"] == "running"
        assert client.post("/api/retrain", json={}).status_code == 409  # one at a time
        assert client.get("/api/next").status_code == 200  # the page stays usable meanwhile
        stop = time.monotonic() + 240
        while retrainer.running and time.monotonic() < stop:
            time.sleep(0.2)
        job = client.get("/api/retrain").json()
        assert job["state"] == "done", job["message"]
        assert job["labels"] == 20
        # 2 validation images: model.pt keeps the last epoch, and the page reports that epoch's accuracy
        rows = list(csv.DictReader((Path(job["model"]).parent / "metrics.csv").open()))
        assert job["val_accuracy"] == float(rows[-1]["val_seq_acc"])
        assert client.get("/api/status").json()["model"] == job["model"]
    assert bench.generation == 1 and bench.recognizer.meta["path"] == job["model"]
    finish(bench)


@pytest.mark.parametrize("kept, expected", [("last.ckpt", 0.5), ("best.ckpt", 0.75)])
def test_the_reported_accuracy_is_that_of_the_kept_epoch(tmp_path, monkeypatch, kept, expected):
    from types import SimpleNamespace

    from captcha_crnn.labelling.retrain import kept_val_accuracy
    from captcha_crnn.model import io

    (tmp_path / "metrics.csv").write_text(
        "epoch,train_loss,val_loss,val_cer,val_seq_acc\n1,2.0,0.9,0.3,0.25\n2,1.0,0.4,0.1,0.75\n3,0.8,0.6,0.2,0.5\n"
    )
    monkeypatch.setattr(io, "load_model", lambda path: SimpleNamespace(meta={"checkpoint": kept}))
    assert kept_val_accuracy(tmp_path) == expected


def test_any_character_may_be_labelled_without_a_charset(folder, trained_run):
    bench = open_bench(folder, model=trained_run / "model.pt", order="name")  # a digit model
    file = bench.next()["file"]
    assert bench.label(file, "12+3=").label == "12+3="  # characters the model cannot read yet
    for invisible in ("55\x00a", "he\u200bl\u202elo", "ab\n12"):  # no glyph: refused even so
        with pytest.raises(LabelError, match="spaces or invisible characters"):
            bench.label(file, invisible)
    assert bench.store.rows[file].label == "12+3="
    finish(bench)
    charset_bench = open_bench(folder, model=trained_run / "model.pt", order="name", charset="0123456789+=")
    other = charset_bench.next()
    assert set(other["suggestion"] or "") <= set("0123456789")  # suggestions: what the model can read
    finish(charset_bench)


def test_existing_labels_files_are_read_as_train_reads_them(folder):
    first = sorted(p.name for p in folder.glob("*.png"))[0]
    (folder / "labels.csv").write_text(f"./{first},1234\n")  # no header, a ./ path
    bench = open_bench(folder, order="name")
    assert first not in bench.queue() and bench.counts()["labelled"] == 1
    bench.label(bench.next()["file"], "5678")
    rows = read_rows(folder / "labels.csv", folder)[0]
    assert rows[first].label == "1234" and len(rows) == 2  # its row rewritten as first.png, not a second one
    finish(bench)
    (folder / "labels.csv").write_text(f"file,label,source\n{first},1234,scan\n")
    with pytest.raises(CaptchaCrnnError, match="source"):  # a column it would drop: refused, not rewritten
        LabelStore(folder / "labels.csv", folder).open()
    assert "scan" in (folder / "labels.csv").read_text()


def test_symlinks_to_files_outside_the_folder_are_not_served(folder, captcha_dir, caplog):
    """A symlink in DIR to a file elsewhere would let anyone who reaches the page read that file."""
    secret = captcha_dir.parent / "secret.png"
    shutil.copy(next(iter(sorted(folder.glob("*.png")))), secret)
    (folder / "outside.png").symlink_to(secret)
    (folder / "inside.png").symlink_to(folder / "zz-broken.png")  # a link within DIR stays
    bench = open_bench(folder, order="name")
    with TestClient(create_label_app(bench)) as client:
        assert "outside.png" not in bench.known and "inside.png" in bench.known
        assert client.get("/api/image", params={"file": "outside.png"}).status_code == 404
        assert client.get("/api/item", params={"file": "outside.png"}).status_code == 404
    finish(bench)
    assert "1 image(s) of" in caplog.text and "--follow-symlinks" in caplog.text

    bench = open_bench(folder, order="name", follow_symlinks=True)
    with TestClient(create_label_app(bench)) as client:
        assert client.get("/api/image", params={"file": "outside.png"}).content == secret.read_bytes()
    finish(bench)


@pytest.fixture
def hung_training(tmp_path, monkeypatch):
    """Retrains whose `train` child never finishes (a stand-in interpreter that only sleeps)."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr("captcha_crnn.labelling.retrain.sys.executable", str(fake))
    labelled = [(f"{i}.png", "1234") for i in range(25)]
    return Retrainer(tmp_path, tmp_path / "runs"), labelled


def wait_finished(retrainer, seconds=15.0):
    stop = time.monotonic() + seconds
    while retrainer.running:
        assert time.monotonic() < stop, "the retrain job is still running"
        time.sleep(0.05)
    return retrainer.job


def test_a_hung_retrain_is_stopped_after_its_time_and_the_next_may_start(hung_training, monkeypatch):
    retrainer, labelled = hung_training
    monkeypatch.setattr("captcha_crnn.labelling.retrain.GRACE_SECONDS", 1.0)
    retrainer.start(labelled, None, minutes=0.01)
    job = wait_finished(retrainer)
    assert job.state == "failed" and "did not finish within 2 s and was stopped" in job.message
    assert retrainer.start(labelled, None, minutes=0.01).state == "running"  # not refused as "running"
    wait_finished(retrainer)  # not left to end, and log, after the test


def test_stopping_the_workbench_ends_a_running_retrain(hung_training):
    retrainer, labelled = hung_training
    retrainer.start(labelled, None)  # 5 minutes, plus the grace
    deadline = time.monotonic() + 10
    while retrainer._proc is None:  # the child has been started
        assert time.monotonic() < deadline
        time.sleep(0.05)
    retrainer.stop()
    assert wait_finished(retrainer, 5.0).state == "failed"
    assert retrainer._proc.poll() is not None
