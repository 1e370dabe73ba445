"""generate -> train -> checkpoint -> load -> predict -> evaluate, through the CLI and the Python API."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from isolated import run_without
from PIL import Image

from captcha_crnn import Prediction, Recognizer
from captcha_crnn.cli.main import main
from captcha_crnn.model.io import load_model


def test_run_folder_contents(trained_run):
    for name in ["model.pt", "run.json", "metrics.csv", "checkpoints/best.ckpt", "checkpoints/last.ckpt"]:
        assert (trained_run / name).is_file(), name
    rows = list(csv.DictReader((trained_run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "val_loss", "val_cer", "val_seq_acc", "lr"} <= set(rows[0])
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])  # it learns something
    run = json.loads((trained_run / "run.json").read_text())
    assert run["charset"] == "0123456789"
    # 100x40 -> 80x32 keeps 20 frames for 4 characters; widened by 1.2 to give each 6 frames
    assert run["input_policy"]["min_width"] == run["input_policy"]["max_width"] == 96
    assert run["input_policy"]["stretch"] == 1.2 and "6 frames per character" in run["choices"]["stretch"]
    assert run["input_policy"]["crop"] is False and run["choices"]["crop"].startswith("none: in 0 of")


def test_model_stores_charset_and_input_policy(trained_run):
    rec = Recognizer.load(trained_run / "model.pt")
    assert rec.charset == "0123456789"
    assert rec.policy.height == 32 and rec.policy.fixed_width == 96 and rec.policy.stretch == 1.2
    from_ckpt = Recognizer.load(trained_run / "checkpoints" / "best.ckpt")
    assert from_ckpt.charset == rec.charset


def test_predict_accepts_every_input_kind_and_agrees(trained_run, captcha_dir):
    rec = Recognizer.load(trained_run / "model.pt")
    path = sorted(captcha_dir.glob("*.png"))[0]
    data = path.read_bytes()
    pil = Image.open(io.BytesIO(data))
    arr = np.asarray(pil.convert("RGB"))
    results = [rec.predict(src) for src in (path, str(path), data, pil, arr)]
    assert all(isinstance(r, Prediction) for r in results)
    assert len({r.text for r in results}) == 1
    assert all(0.0 <= r.confidence <= 1.0 for r in results)
    batch = rec.predict([path, data])
    assert isinstance(batch, list) and [b.text for b in batch] == [results[0].text] * 2


def test_cli_predict_tsv_and_json(trained_run, captcha_dir, capsys):
    model = str(trained_run / "model.pt")
    files = sorted(captcha_dir.glob("*.png"))
    assert main(["predict", model, str(files[0]), str(captcha_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + len(files)
    path, text, conf = lines[0].split("\t")
    assert path == str(files[0]) and set(text) <= set("0123456789") and 0 <= float(conf) <= 1
    assert main(["predict", model, str(files[1]), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert set(record) == {"file", "text", "confidence"}


def test_cli_evaluate_table_and_json(trained_run, captcha_dir, capsys):
    model = str(trained_run / "model.pt")
    assert main(["evaluate", model, str(captcha_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"count", "sequence_accuracy", "cer", "char_accuracy", "loss", "errors"}
    assert result["count"] == 48
    assert result["char_accuracy"] == pytest.approx(1 - result["cer"])
    assert result["sequence_accuracy"] == pytest.approx(1 - len(result["errors"]) / 48)
    assert result["loss"] > 0
    for err in result["errors"]:
        assert set(err) == {"file", "label", "prediction", "confidence"} and err["label"] != err["prediction"]
    assert main(["evaluate", model, str(captcha_dir)]) == 0
    out = capsys.readouterr().out
    assert "sequence accuracy" in out and "character error rate" in out


def test_cli_evaluate_lists_the_wrong_readings_most_confident_first(trained_run, captcha_dir, capsys):
    """--length 2 on 4-character labels makes every reading wrong, so the list is never empty."""
    model = str(trained_run / "model.pt")
    assert main(["evaluate", model, str(captcha_dir), "--length", "2", "--json"]) == 0
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert len(errors) == 48 and all(len(e["prediction"]) <= 2 for e in errors)
    assert main(["evaluate", model, str(captcha_dir), "--length", "2"]) == 0
    lines = capsys.readouterr().out.split("wrong (48, most confident first):\n")[1].splitlines()
    ranked = sorted(errors, key=lambda e: -e["confidence"])
    assert lines[0] == f"  {ranked[0]['file']}: {ranked[0]['label']} -> {ranked[0]['prediction']} " + (
        f"({ranked[0]['confidence']:.2f})"
    )
    shown = [float(line.rsplit("(", 1)[1].rstrip(")")) for line in lines]
    assert shown == sorted(shown, reverse=True)


def test_run_folder_is_never_overwritten_without_force(trained_run, captcha_dir, capsys):
    before = (trained_run / "metrics.csv").read_text()
    assert main(["train", str(captcha_dir), "--out", str(trained_run), "--max-epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and len(err.strip().splitlines()) == 1
    assert (trained_run / "metrics.csv").read_text() == before


def test_resume_continues_the_run(tmp_path, captcha_dir):
    run = tmp_path / "run"
    args = ["-q", "train", str(captcha_dir), "--out", str(run), "--batch-size", "16", "--no-progress"]
    assert main([*args, "--max-epochs", "1"]) == 0
    assert main([*args, "--max-epochs", "2", "--resume"]) == 0
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["elapsed_s"]) > float(rows[0]["elapsed_s"])  # the clock continues after a resume
    keep = tmp_path / "run" / "mine.txt"
    keep.write_text("user file")
    mine = run / "checkpoints" / "mine.ckpt"
    mine.write_text("a user's own file among the checkpoints")
    assert main([*args, "--max-epochs", "1", "--force"]) == 0
    assert keep.read_text() == "user file"  # --force replaces only what a run writes
    assert mine.exists()
    assert len(list(csv.DictReader((run / "metrics.csv").open()))) == 1


def test_force_with_a_mistyped_data_folder_keeps_the_old_run(trained_run, tmp_path, capsys):
    before = {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file()}
    code = main(["train", str(tmp_path / "no-such-folder"), "--out", str(trained_run), "--force"])
    assert code == 2 and "no-such-folder" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in trained_run.rglob("*") if p.is_file()} == before


def test_resume_uses_the_recorded_split_and_refuses_a_conflicting_one(tmp_path, captcha_dir, capsys):
    run = tmp_path / "run"
    args = ["-q", "train", str(captcha_dir), "--out", str(run), "--batch-size", "16", "--no-progress"]
    assert main([*args, "--max-epochs", "1", "--seed", "5", "--val-split", "0.25"]) == 0
    capsys.readouterr()
    assert main([*args, "--max-epochs", "2", "--resume", "--seed", "6"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"error: {run}: was trained with --seed 5; resume without --seed 6"]
    other = [a if a != str(captcha_dir) else str(tmp_path) for a in args]  # another DATA folder
    assert main([*other, "--max-epochs", "2", "--resume"]) == 2
    assert f"was trained on {captcha_dir}; resume it with that DATA folder" in capsys.readouterr().err
    record = json.loads((run / "run.json").read_text())
    del record["options"]["schedule"]  # as a run recorded before schedules existed
    (run / "run.json").write_text(json.dumps(record))
    assert main([*args, "--max-epochs", "2", "--resume", "--schedule", "fixed"]) == 2
    assert "before --schedule existed, on the plateau schedule" in capsys.readouterr().err
    assert main([*args, "--max-epochs", "2", "--resume"]) == 0  # the recorded seed and split
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["val_images"] for r in rows] == ["12", "12"]  # 25% of 48, both epochs


def test_resume_without_run_json_is_one_line(tmp_path, captcha_dir, capsys):
    run = tmp_path / "run"
    args = ["-q", "train", str(captcha_dir), "--out", str(run), "--batch-size", "16", "--no-progress"]
    assert main([*args, "--max-epochs", "1"]) == 0
    (run / "run.json").unlink()
    capsys.readouterr()
    assert main([*args, "--max-epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {run / 'run.json'}: missing or damaged, so the run cannot be resumed"


def test_stem_labels_and_label_pattern_train(tmp_path, stem_dir):
    run = tmp_path / "run"
    code = main(["-q", "train", str(stem_dir), "--out", str(run), "--max-epochs", "1", "--no-progress"])
    assert code == 0
    assert Recognizer.load(run / "model.pt").charset == "0123456789"
    # the same images named like ab12-0.png, labels cut out with a pattern
    named = tmp_path / "named"
    named.mkdir()
    for i, src in enumerate(sorted(stem_dir.glob("*.png"))):
        (named / f"{src.stem}-{i}.png").write_bytes(src.read_bytes())
    run2 = tmp_path / "run2"
    args = ["-q", "train", str(named), "--label-pattern", "^[^-]+", "--out", str(run2), "--max-epochs", "1"]
    assert main([*args, "--no-progress"]) == 0
    assert json.loads((run2 / "run.json").read_text())["charset"] == "0123456789"


def test_val_dir_is_used_for_validation(tmp_path, captcha_dir, stem_dir):
    run = tmp_path / "run"
    args = [
        "-q",
        "train",
        str(captcha_dir),
        "--val-dir",
        str(stem_dir),
        "--out",
        str(run),
        "--max-epochs",
        "1",
        "--keep",
        "best",
    ]
    assert main([*args, "--no-progress"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["train_count"] == 48
    assert info["val_count"] == len(list(stem_dir.glob("*.png")))
    assert info["choices"]["weights"] == "best (--keep)"
    assert load_model(run / "model.pt").meta["checkpoint"] == "best.ckpt"


def test_a_character_only_the_validation_labels_have_is_in_the_charset(tmp_path, stem_dir):
    """Learned from every label, not the training split's alone (which refused the validation image)."""
    train_dir, val_dir = tmp_path / "train", tmp_path / "val"
    train_dir.mkdir()
    val_dir.mkdir()
    for src in sorted(stem_dir.glob("*.png")):
        (val_dir if "9" in src.stem else train_dir).joinpath(src.name).write_bytes(src.read_bytes())
    run = tmp_path / "run"
    args = ["-q", "train", str(train_dir), "--val-dir", str(val_dir), "--out", str(run), "--max-epochs", "1"]
    assert main([*args, "--no-progress"]) == 0
    assert "9" in json.loads((run / "run.json").read_text())["charset"]


def test_few_validation_images_keep_the_last_weights(trained_run):
    """A fine-tuning run on 5 validation images runs the fixed schedule: model.pt holds its last
    (moving-average) weights."""
    info = json.loads((trained_run / "run.json").read_text())
    assert info["choices"]["weights"].startswith("last: the fixed schedule's end")
    kept = load_model(trained_run / "model.pt")
    assert kept.meta["checkpoint"] == "last.ckpt"
    last = load_model(trained_run / "checkpoints" / "last.ckpt")
    assert all(
        torch.equal(a, b) for a, b in zip(kept.model.state_dict().values(), last.model.state_dict().values())
    )


def test_the_epoch_of_lowest_validation_loss_is_kept_from_100_validation_images():
    from captcha_crnn.options import SMALL_VALIDATION
    from captcha_crnn.training.plan import keep_weights

    assert SMALL_VALIDATION == 100
    assert keep_weights(None, "plateau", 99)[0] == "last"
    assert keep_weights(None, "plateau", 100)[0] == "best"
    assert keep_weights("last", "plateau", 5000) == ("last", "last (--keep)")
    # the fixed schedule keeps where it ends, however many images validate
    assert keep_weights(None, "fixed", 5000)[0] == "last"
    assert keep_weights("best", "fixed", 5000)[0] == "best"


def test_predict_imports_no_training_code(trained_run, captcha_dir):
    code = (
        "import sys; from captcha_crnn.cli.main import main; "
        f"main(['predict', {str(trained_run / 'model.pt')!r}, {str(captcha_dir)!r}]); "
        "assert not [m for m in sys.modules if m.startswith('captcha_crnn.training')]"
    )
    run_without(code, ("lightning", "pytorch_lightning", "torchmetrics", "matplotlib"))


def test_generate_is_reproducible(tmp_path):
    assert main(["generate", str(tmp_path / "a"), "--count", "3", "--seed", "5", "--length", "3-6"]) == 0
    assert main(["generate", str(tmp_path / "b"), "--count", "3", "--seed", "5", "--length", "3-6"]) == 0
    assert main(["generate", str(tmp_path / "c"), "--count", "3", "--seed", "6", "--length", "3-6"]) == 0
    a = sorted(p.read_bytes() for p in (tmp_path / "a").glob("*.png"))
    b = sorted(p.read_bytes() for p in (tmp_path / "b").glob("*.png"))
    c = sorted(p.read_bytes() for p in (tmp_path / "c").glob("*.png"))
    assert a == b and a != c
    rows = (tmp_path / "a" / "labels.csv").read_text().splitlines()
    assert rows[0] == "file,label" and len(rows) == 4
    assert all(3 <= len(r.split(",")[1]) <= 6 for r in rows[1:])


def test_mixed_image_sizes_train_without_size_flags(tmp_path):
    """Narrow and wide images in one folder: the policy keeps aspect ratios and predicts both sizes."""
    from captcha_crnn.data.synthetic import Style, generate

    root = tmp_path / "mixed"
    rows = ["file,label"]
    for sub, size, length in [("narrow", (120, 40), (4, 4)), ("wide", (400, 80), (6, 8))]:
        generate(root / sub, 16, Style(length=length, width=(size[0],) * 2, height=size[1]), seed=len(sub))
        for line in (root / sub / "labels.csv").read_text().splitlines()[1:]:
            name, label = line.split(",")
            rows.append(f"{sub}/{name},{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    args = ["-q", "train", str(root), "--out", str(run), "--max-epochs", "1", "--no-progress"]
    assert main([*args, "--height", "32"]) == 0  # the default would read the median 60-px image at 48
    policy = json.loads((run / "run.json").read_text())["input_policy"]
    # At their aspect ratio 120x40 -> 96x32 (6 frames for each of 4 characters) and 400x80 -> 160x32
    # (40 frames for 6-8 characters): the 8-character labels, a share of the wide half, widen all a little
    stretch = policy["stretch"]
    assert 1 < stretch <= 1.2
    narrow_width, wide_width = (round(w * stretch / 4) * 4 for w in (96, 160))
    assert policy["min_width"] < narrow_width <= wide_width <= policy["max_width"]
    rec = Recognizer.load(run / "model.pt")
    narrow, wide = sorted((root / "narrow").glob("*.png"))[0], sorted((root / "wide").glob("*.png"))[0]
    assert rec.preprocess(narrow).shape[:2] == (32, narrow_width)
    assert rec.preprocess(wide).shape[:2] == (32, wide_width)
    preds = rec.predict([narrow, wide])
    assert len(preds) == 2 and all(0.0 <= p.confidence <= 1.0 for p in preds)


def test_predict_prints_one_line_per_image_whatever_its_name(tmp_path, trained_run, captcha_dir, capsys):
    source = sorted(captcha_dir.glob("*.png"))[0].read_bytes()
    for name in ("plain.png", "two\nlines.png", "tab\there.png"):
        (tmp_path / name).write_bytes(source)
    assert main(["-q", "predict", str(trained_run / "model.pt"), str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.count("\t") == 2 for line in lines)
    assert sorted(Path(line.split("\t")[0]).name for line in lines) == [
        "plain.png",
        "tab\\there.png",
        "two\\nlines.png",
    ]
