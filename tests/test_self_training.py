"""`train --unlabelled`: pseudo-labels from confident readings, a few rounds, validation on labels only."""

import csv
import json

from captcha_crnn import Recognizer
from captcha_crnn.cli.main import main
from captcha_crnn.data.labels import LabelledImage
from captcha_crnn.data.synthetic import Style, generate
from captcha_crnn.training import self_training


def test_pseudo_labels_are_the_confident_readings(reading_model, captcha_dir):
    images = sorted(captcha_dir.glob("*.png"))[:12]
    rec = Recognizer.load(reading_model)
    # one batch, as pseudo_labels reads them: a batch's float sums may differ from one image's in the last
    # bits on some CPUs, and this deliberately extreme model's readings with them
    preds = dict(zip(images, rec.predict(images)))
    threshold = sorted(p.confidence for p in preds.values())[6]  # about half pass
    kept = self_training.pseudo_labels(reading_model, images, threshold)
    expected = [LabelledImage(p, pred.text) for p, pred in preds.items() if pred.confidence >= threshold]
    assert kept == expected and 0 < len(kept) < len(images)


def test_self_training_rounds_are_recorded_and_validate_on_labelled_images(
    tmp_path, captcha_dir, monkeypatch
):
    unlabelled = tmp_path / "unlabelled"
    generate(unlabelled, 16, Style(length=(4, 4), width=(100, 100), height=40), seed=9)
    truth = [
        LabelledImage(unlabelled / n, label)
        for n, label in list(csv.reader((unlabelled / "labels.csv").open()))[1:]
    ]
    (unlabelled / "labels.csv").unlink()  # only images: their labels are unknown to training
    calls = []

    def readings(model, images, threshold):  # a model this small reads nothing: stand in for its readings
        calls.append((model, len(images), threshold))
        return truth[:10]

    monkeypatch.setattr(self_training, "pseudo_labels", readings)
    run = tmp_path / "run"
    args = ["train", str(captcha_dir), "--out", str(run), "--max-epochs", "1", "--no-progress"]
    assert main([*args, "--unlabelled", str(unlabelled), "--rounds", "1", "--pseudo-threshold", "0.01"]) == 0
    record = json.loads((run / "run.json").read_text())
    rounds = record["self_training"]["rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and rounds[0]["pseudo_labels"] == 0
    assert record["self_training"]["threshold"] == 0.01 and record["self_training"]["unlabelled_images"] == 16
    assert (run / "self-training" / "round-0" / "model.pt").is_file() and (run / "model.pt").is_file()
    # round 1 starts from round 0's model and validates on the same labelled images
    assert record["options"]["init"] == str(run / "self-training" / "round-0" / "model.pt")
    round0 = json.loads((run / "self-training" / "round-0" / "run.json").read_text())
    assert record["val_count"] == round0["val_count"] == 5
    assert record["options"]["steps"] == round0["options"]["steps"] * self_training.LATER_ROUNDS_SHARE
    assert rounds[1]["pseudo_labels"] == 10 and record["train_count"] == round0["train_count"] + 10
    assert calls == [(run / "self-training" / "round-0" / "model.pt", 16, 0.01)]
    # a plain --resume would go on without the pseudo-labels: refused
    assert main([*args, "--resume"]) == 2


def test_self_training_refuses_bad_settings_before_training(tmp_path, captcha_dir, capsys):
    base = ["train", str(captcha_dir), "--out", str(tmp_path / "r"), "--no-progress"]
    for extra, message in (
        (["--unlabelled", str(captcha_dir)], "must not be the labelled DATA folder"),
        (["--unlabelled", str(tmp_path / "none")], "no such file or folder"),
        (["--unlabelled", str(captcha_dir), "--pseudo-threshold", "1.5"], "between 0 and 1"),
    ):
        assert main([*base, *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
