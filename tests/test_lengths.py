"""Readings keep to the lengths of the training labels: the length-constrained best path, where the
model records its lengths, and --length / length= to choose them."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from captcha_crnn import Recognizer
from captcha_crnn.cli.main import main
from captcha_crnn.data.images import InputPolicy
from captcha_crnn.data.tokenizer import CTCTokenizer, best_path_within, collapse
from captcha_crnn.errors import CaptchaCrnnError


def brute_force(log_probs: np.ndarray, lo: int, hi: int) -> float | None:
    """The best log-probability over every path whose text has lo..hi characters."""
    frames, classes = log_probs.shape
    best = None
    for path in itertools.product(range(classes), repeat=frames):
        if lo <= len(collapse(np.array(path))) <= hi:
            score = float(sum(log_probs[t, c] for t, c in enumerate(path)))
            best = score if best is None else max(best, score)
    return best


@pytest.mark.parametrize("seed", range(40))
def test_best_path_within_matches_every_path_tried(seed):
    rng = np.random.default_rng(seed)
    frames, classes = int(rng.integers(1, 7)), int(rng.integers(2, 5))
    log_probs = np.log(rng.dirichlet(np.full(classes, 0.5), size=frames))
    lo = int(rng.integers(0, 4))
    hi = lo + int(rng.integers(0, 3))
    found, expected = best_path_within(log_probs, lo, hi), brute_force(log_probs, lo, hi)
    if expected is None:
        assert found is None
        return
    path, score = found
    assert score == pytest.approx(expected)
    assert lo <= len(collapse(path)) <= hi
    assert score == pytest.approx(sum(log_probs[t, c] for t, c in enumerate(path)))


def test_a_length_beyond_the_frames_costs_nothing():
    """A client's length=10**12 once allocated a table that long: no path reads more than its frames."""
    log_probs = np.log(np.random.default_rng(0).dirichlet(np.ones(3), size=5))
    assert best_path_within(log_probs, 1, 10**12)[1] == pytest.approx(best_path_within(log_probs, 1, 5)[1])
    assert best_path_within(log_probs, 6, 10**12) is None


def scores(rows: list[list[float]]) -> np.ndarray:
    """Per-frame probabilities (blank, "1", "2") as log-probabilities."""
    p = np.array(rows, dtype=np.float64)
    return np.log(p / p.sum(axis=1, keepdims=True))


# The best path reads "1 1 2" (a doubled 1); the best two-character path reads "12".
DOUBLED = scores([[0.1, 0.8, 0.1], [0.55, 0.45, 1e-9], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7]])


def test_a_reading_of_the_wrong_length_gives_way_to_the_best_of_the_right_one():
    tok = CTCTokenizer("12")
    assert tok.greedy_decode(DOUBLED)[0] == "112"
    assert tok.greedy_decode(DOUBLED, text_lengths=(3, 3))[0] == "112"  # already fits: unchanged
    text, confidence = tok.greedy_decode(DOUBLED, text_lengths=(2, 2))
    assert text == "12"
    assert confidence == pytest.approx(0.8 * 0.45 * 0.8 * 0.7)  # the path 1 1 1 2


class FixedScores:
    """A backend that reads every image as DOUBLED."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.repeat(DOUBLED[None].astype(np.float32), len(images), axis=0)


def recognizer(meta: dict) -> Recognizer:
    return Recognizer(FixedScores(), "12", InputPolicy(32, 16, 16, 4, 1), meta)


def test_recognizer_keeps_to_the_recorded_lengths_unless_told_otherwise():
    image = np.zeros((32, 16), np.uint8)
    assert recognizer({}).predict(image).text == "112"  # no lengths recorded: any length
    rec = recognizer({"label_lengths": [2, 2]})
    assert rec.predict(image).text == "12"
    assert rec.predict(image, length="any").text == "112"
    assert rec.predict(image, length=3).text == "112"
    assert rec.predict([image], length="2-3")[0].text == "112"
    assert recognizer({"label_lengths": "2-2"}).predict(image).text == "12"  # as ONNX metadata holds it
    for bad in ("0", "3-2", "2-", "-3", "four", (5, 1)):
        with pytest.raises(CaptchaCrnnError, match="--length must be N or N-M"):
            rec.predict(image, length=bad)


def test_a_length_no_input_can_hold_is_refused_before_any_image_is_read():
    """The input is at most 16 px wide, one frame per 4 px: no reading is longer than 4 characters."""
    rec = recognizer({})
    image = np.zeros((32, 16), np.uint8)
    assert len(rec.predict(image, length="4-9").text) == 4
    for bad in (5, "5-9", "99"):
        with pytest.raises(
            CaptchaCrnnError, match=r"--length asks for (5|99)\+ characters, but this model reads at most 4"
        ):
            rec.predict(image, length=bad)


def test_train_records_the_label_lengths_and_export_carries_them(trained_run, captcha_dir, tmp_path, capsys):
    record = json.loads((trained_run / "run.json").read_text())
    assert record["label_lengths"] == [4, 4]  # the fixture's labels all have 4 characters
    assert Recognizer.load(trained_run / "model.pt").text_lengths == (4, 4)
    onnx = tmp_path / "m.onnx"
    assert main(["export", str(trained_run / "model.pt"), str(onnx)]) == 0
    assert Recognizer.load(onnx).text_lengths == (4, 4)
    capsys.readouterr()
    assert main(["predict", str(onnx), str(captcha_dir), "--length", "9-1"]) == 2
    assert capsys.readouterr().err.startswith("error: --length must be N or N-M")
    assert main(["predict", str(onnx), str(captcha_dir), "--length", "99"]) == 2  # 96 px: 24 positions
    assert capsys.readouterr().err.startswith(
        "error: --length asks for 99+ characters, but this model reads at most 24"
    )


def test_the_service_keeps_to_the_recorded_lengths_and_takes_length_per_request():
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from captcha_crnn.serving.app import create_app

    buf = io.BytesIO()
    Image.new("L", (16, 32), 255).save(buf, "PNG")
    with TestClient(create_app(recognizer({"label_lengths": [2, 2]}), "m.pt")) as client:
        read = lambda **params: client.post("/v1/recognize", params=params, content=buf.getvalue())  # noqa: E731
        assert read().json()["text"] == "12"
        assert read(length="any").json()["text"] == "112"
        assert read(length="3", charset="12").json()["text"] == "112"
        bad = read(length="0")
        assert bad.status_code == 422 and bad.json()["detail"].startswith("length must be N or N-M")
