"""`--ignore-case`: training folds labels to lower case and the model records it; evaluation scores
without regard to case, for any model."""

import json

import numpy as np
import pytest

from captcha_crnn import Recognizer
from captcha_crnn.cli.main import main
from captcha_crnn.data.labels import LabelledImage
from captcha_crnn.data.synthetic import Style, generate
from captcha_crnn.inference.evaluate import evaluate


@pytest.fixture(scope="module")
def mixed_case_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed")
    generate(out, 24, Style(charset="aBcD", length=(3, 3), width=(90, 90), height=32), seed=3)
    return out


def test_train_ignore_case_folds_labels_and_the_model_records_it(tmp_path, mixed_case_dir, capsys):
    run = tmp_path / "run"
    args = ["train", str(mixed_case_dir), "--out", str(run), "--max-epochs", "1", "--no-progress"]
    assert main([*args, "--ignore-case"]) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["charset"] == "abcd" and record["options"]["ignore_case"] is True
    rec = Recognizer.load(run / "model.pt")
    assert rec.ignore_case and rec.charset == "abcd"
    assert main(["export", str(run / "model.pt"), str(tmp_path / "m.onnx")]) == 0
    assert Recognizer.load(tmp_path / "m.onnx").ignore_case
    # mixed-case labels score against the folded model without --ignore-case: the model says how
    capsys.readouterr()
    assert main(["evaluate", str(run / "model.pt"), str(mixed_case_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 24
    # a resumed run keeps it: it is one of the recorded options
    code = main([*args, "--resume", "--max-epochs", "2"])
    assert code == 0 and json.loads((run / "run.json").read_text())["charset"] == "abcd"


class Fixed:
    """A backend reading 'A' then 'b' in every image (blank between)."""

    def __init__(self, charset: str) -> None:
        self.charset = charset

    def __call__(self, images: np.ndarray) -> np.ndarray:
        probs = np.full((len(images), 3, len(self.charset) + 1), 0.01)
        probs[:, 0, self.charset.index("A") + 1] = 0.9
        probs[:, 1, 0] = 0.9
        probs[:, 2, self.charset.index("b") + 1] = 0.9
        return np.log(probs / probs.sum(-1, keepdims=True)).astype(np.float32)


def test_evaluate_ignore_case_scores_any_model_case_insensitively(captcha_dir):
    from captcha_crnn.data.images import InputPolicy

    rec = Recognizer(Fixed("abAB"), "abAB", InputPolicy(32, 80, 80, 4))
    image = sorted(captcha_dir.glob("*.png"))[0]
    items = [LabelledImage(image, "ab")]
    assert evaluate(rec, items).sequence_accuracy == 0.0  # reads "Ab"
    assert evaluate(rec, items, ignore_case=True).sequence_accuracy == 1.0
    assert evaluate(rec, [LabelledImage(image, "AB")], ignore_case=True).sequence_accuracy == 1.0
