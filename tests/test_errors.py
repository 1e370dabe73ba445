"""Bad input: one clear line naming the file and the problem, a non-zero exit, never a traceback."""

import pickle
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from captcha_crnn.cli.main import main


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_missing_and_empty_data_folders(tmp_path, capsys, trained_run):
    code, err = run_cli(capsys, "train", str(tmp_path / "nope"), "--out", str(tmp_path / "r"))
    assert code == 2 and "nope: no such file or folder" in one_line_error(err)
    (tmp_path / "empty").mkdir()
    code, err = run_cli(capsys, "train", str(tmp_path / "empty"), "--out", str(tmp_path / "r"))
    assert code == 2 and "empty: no images" in one_line_error(err)
    code, err = run_cli(capsys, "evaluate", str(trained_run / "model.pt"), str(tmp_path / "empty"))
    assert code == 2 and "no images" in one_line_error(err)


def test_unreadable_files_in_training_folder_are_skipped_and_counted(tmp_path, capsys, captcha_dir):
    data = tmp_path / "data"
    shutil.copytree(captcha_dir, data)
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (data / "zero.png").write_bytes(b"")
    with (data / "labels.csv").open("a") as fh:
        fh.write("broken.png,1234\nzero.png,5678\n")
    code, err = run_cli(
        capsys,
        "train",
        str(data),
        "--out",
        str(tmp_path / "r"),
        "--max-epochs",
        "1",
        "--no-progress",
        "--val-split",
        "0.5",
    )
    assert code == 0, err
    assert "warning: skipped" in err and "unreadable" in err
    assert "Traceback" not in err


def test_unreadable_file_named_directly_is_an_error(tmp_path, capsys, trained_run):
    bad = tmp_path / "notes.png"
    bad.write_text("just text")
    code, err = run_cli(capsys, "predict", str(trained_run / "model.pt"), str(bad))
    assert code == 2 and "notes.png: not an image file" in one_line_error(err)
    code, err = run_cli(capsys, "predict", str(trained_run / "model.pt"), str(tmp_path / "missing.png"))
    assert code == 2 and "missing.png: no such file" in one_line_error(err)


def test_unreadable_file_inside_predict_folder_is_skipped(tmp_path, capsys, trained_run, captcha_dir):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(sorted(captcha_dir.glob("*.png"))[0], folder / "good.png")
    (folder / "bad.png").write_bytes(b"nope")
    code = main(["predict", str(trained_run / "model.pt"), str(folder)])
    out, err = capsys.readouterr()
    assert code == 0 and "good.png" in out and "bad.png" not in out and "skipped 1" in err


def test_label_with_unknown_character(tmp_path, capsys, trained_run, captcha_dir):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(sorted(captcha_dir.glob("*.png"))[0], folder / "12x4.png")
    code, err = run_cli(capsys, "evaluate", str(trained_run / "model.pt"), str(folder))
    line = one_line_error(err)
    assert code == 2 and "12x4.png" in line and "'x'" in line
    code, err = run_cli(capsys, "train", str(captcha_dir), "--charset", "01234", "--out", str(tmp_path / "r"))
    line = one_line_error(err)
    assert code == 2 and "outside the charset" in line


def test_label_too_long_for_the_sequence_is_caught_before_training(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for label in ["abcdefghijklmnop", "ponmlkjihgfedcba"]:
        Image.new("L", (40, 32), 255).save(folder / f"{label}.png")  # 40 px -> 10 frames < 16 chars
    code, err = run_cli(capsys, "train", str(folder), "--out", str(tmp_path / "r"))
    line = one_line_error(err)
    assert code == 2 and "needs 16 output frames" in line and "--min-width 64" in line
    assert not (tmp_path / "r" / "checkpoints").exists()


@pytest.mark.parametrize("kind", ["text", "random", "pickle", "missing"])
def test_model_file_that_is_not_a_model(tmp_path, capsys, captcha_dir, kind):
    model = tmp_path / "model.pt"
    if kind == "text":
        model.write_text("hello")
    elif kind == "random":
        model.write_bytes(bytes(range(256)) * 8)
    elif kind == "pickle":
        model.write_bytes(pickle.dumps({"format": "something else", "x": [1, 2]}))
    code, err = run_cli(capsys, "predict", str(model), str(captcha_dir))
    line = one_line_error(err)
    assert code == 2 and "model.pt" in line
    assert ("no such model file" if kind == "missing" else "not a captcha-crnn model") in line


def test_errors_in_a_real_process_have_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "captcha_crnn", "evaluate", str(tmp_path / "m.pt"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'm.pt'}: no such model file"
