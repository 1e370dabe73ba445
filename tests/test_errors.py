"""Bad input: one clear line naming the file and the problem, a non-zero exit, never a traceback."""

import pickle
import re
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
        # 16 px, widened at most 3 times: 48 px -> 12 frames < 16 characters
        Image.new("L", (16, 32), 255).save(folder / f"{label}.png")
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


def generate_cli(capsys, out, *extra: str) -> tuple[int, str]:
    return run_cli(capsys, "generate", str(out), "--count", "3", "--size", "64x32", "--seed", "4", *extra)


def test_generate_refuses_a_folder_with_images_or_labels(tmp_path, capsys):
    for existing in ("old.png", "labels.tsv", "labels.csv"):
        out = tmp_path / existing.replace(".", "_")
        out.mkdir()
        (out / existing).write_bytes(b"mine")
        code, err = generate_cli(capsys, out)
        line = one_line_error(err)
        assert code == 2 and str(out) in line and "--force" in line, line
        assert [p.name for p in out.iterdir()] == [existing]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("not an image")
    assert generate_cli(capsys, tmp_path / "notes")[0] == 0  # other files do not count


def test_generate_into_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, err = generate_cli(capsys, tmp_path / "afile")
    assert code == 2 and "afile: not a folder" in one_line_error(err)


def test_generate_force_adds_beside_other_images_but_never_overwrites(tmp_path, capsys):
    assert generate_cli(capsys, tmp_path / "first")[0] == 0
    names = sorted(p.name for p in (tmp_path / "first").glob("*.png"))
    out = tmp_path / "out"
    out.mkdir()
    (out / names[1]).write_bytes(b"mine")  # the name the same seed gives its second image
    code, err = generate_cli(capsys, out, "--force")
    line = one_line_error(err)
    assert code == 2 and str(out) in line and names[1] in line
    assert [p.name for p in out.iterdir()] == [names[1]] and (out / names[1]).read_bytes() == b"mine"

    (out / names[1]).rename(out / "mine.png")
    assert generate_cli(capsys, out, "--force")[0] == 0
    assert (out / "mine.png").read_bytes() == b"mine"
    rows = (out / "labels.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == names
    code, err = generate_cli(capsys, out, "--force", "--seed", "5")  # labels.csv is never replaced
    assert code == 2 and "labels.csv" in one_line_error(err)
    assert (out / "labels.csv").read_text().splitlines() == rows

    tsv = tmp_path / "tsv"  # a labels.tsv is read after a labels.csv: the user's would go unused
    tsv.mkdir()
    (tsv / "labels.tsv").write_text("x.png\tab\n")
    code, err = generate_cli(capsys, tsv, "--force")
    assert code == 2 and "labels.tsv" in one_line_error(err)
    assert [p.name for p in tsv.iterdir()] == ["labels.tsv"]


@pytest.mark.parametrize(
    "option, expected",
    [
        (["--accelerator", "tpu"], "--accelerator must be one of auto, cpu, gpu, cuda, mps, got 'tpu'"),
        (["--devices", "-3"], "--devices must be a positive number or auto, got '-3'"),
        (["--devices", "abc"], "--devices must be a positive number or auto, got 'abc'"),
        (["--devices", "0"], "--devices must be a positive number or auto, got '0'"),
        (["--num-nodes", "0"], "--num-nodes must be at least 1, got 0"),
        (["--strategy", "dpp"], "--strategy 'dpp' is not a Lightning strategy"),
    ],
)
def test_bad_hardware_options_are_one_line_before_any_data_is_read(tmp_path, capsys, option, expected):
    code, err = run_cli(
        capsys, "train", str(tmp_path / "no-data-here"), "--out", str(tmp_path / "r"), *option
    )
    line = one_line_error(err)
    assert code == 2 and expected in line, line
    assert not (tmp_path / "r").exists()


def test_accelerator_that_is_not_here_is_one_line(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code, err = run_cli(
        capsys, "train", str(tmp_path / "d"), "--out", str(tmp_path / "r"), "--accelerator", "gpu"
    )
    line = one_line_error(err)
    assert code == 2 and "--accelerator gpu" in line and "no CUDA GPU" in line


def test_a_damaged_model_file_says_what_is_wrong_with_it(tmp_path, trained_run):
    import torch

    from captcha_crnn.errors import ModelFileError
    from captcha_crnn.model.io import load_model

    good = trained_run / "model.pt"
    raw = torch.load(good, weights_only=True)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:1000])
    no_policy = {k: v for k, v in raw.items() if k != "input_policy"}
    torch.save(no_policy, tmp_path / "no-policy.pt")
    weights = dict(raw["state_dict"])
    weights.pop(next(iter(weights)))
    torch.save({**raw, "state_dict": weights}, tmp_path / "no-weight.pt")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")  # what an ONNX file starts with
    for name, problem in [
        ("cut.pt", "a torch file cut short or damaged"),
        ("no-policy.pt", "no 'input_policy' field"),
        ("no-weight.pt", "Missing key(s) in state_dict"),
        ("m.onnx", "an ONNX model: this reads a model.pt or a training checkpoint"),
    ]:
        with pytest.raises(ModelFileError, match=re.escape(problem)):
            load_model(tmp_path / name)


def test_checkpoints_that_are_not_ours_are_one_line(tmp_path, capsys, trained_run, captcha_dir):
    import torch

    other = tmp_path / "other.ckpt"  # another project's Lightning checkpoint
    torch.save({"state_dict": {"layer.weight": torch.zeros(2)}, "hyper_parameters": {"lr": 0.1}}, other)
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["input_policy"]["height"] = -5
    tampered = tmp_path / "tampered.ckpt"
    torch.save(checkpoint, tampered)
    checkpoint["hyper_parameters"]["input_policy"]["height"] = 32
    checkpoint["hyper_parameters"]["charset"] = "0123"
    mismatched = tmp_path / "mismatched.ckpt"
    torch.save(checkpoint, mismatched)
    for model, problem in [
        (other, "not a captcha-crnn model"),
        (tampered, "damaged"),
        (mismatched, "damaged"),
    ]:
        for args in (
            ["export", str(model), str(tmp_path / "m.onnx")],
            ["predict", str(model), str(captcha_dir)],
        ):
            code, err = run_cli(capsys, *args)
            line = one_line_error(err)
            assert code == 2 and model.name in line and problem in line, line
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "DATA", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["train", "DATA", "--max-epochs", "0"], "--max-epochs must be at least 1, got 0"),
        (["train", "DATA", "--workers", "-1"], "--workers must be 0 or more, got -1"),
        (["train", "DATA", "--lr", "-1"], "--lr must be positive, got -1.0"),
        (["train", "DATA", "--max-time", "0"], "--max-time must be positive, got 0.0"),
        (["train", "DATA", "--patience", "-5"], "--patience must be at least 1, got -5"),
        (["train", "DATA", "--rounds", "0"], "--rounds must be at least 1, got 0"),
        (["evaluate", "m.pt", "DATA", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["predict", "m.pt", "DATA", "--batch-size", "-1"], "--batch-size must be at least 1, got -1"),
        (["train", "DATA", "--seed", "-1"], "--seed must be from 0 to 4294967295, got -1"),
        (["train", "DATA", "--height", "0"], "--height must be at least 16 pixels, got 0"),
        (["train", "DATA", "--min-width", "200", "--max-width", "100"], "--min-width 200 is more than"),
        (["train", "DATA", "--charset", ""], "--charset is empty"),
        (["serve", "m.pt", "--port", "70000"], "--port must be from 0 to 65535, got 70000"),
        (["label", "DATA", "--port", "-1"], "--port must be from 0 to 65535, got -1"),
        (["serve", "m.pt", "--max-body-mb", "0"], "--max-body-mb must be positive, got 0.0"),
        (["serve", "m.pt", "--max-pixels", "0"], "--max-pixels must be at least 1, got 0"),
        (["serve", "m.pt", "--max-body-mb", "inf"], "--max-body-mb must be a finite number, got inf"),
        (["serve", "m.pt", "--max-body-mb", "1e-9"], "--max-body-mb must allow at least one byte, got 1e-09"),
        (["serve", "m.pt", "--request-timeout", "nan"], "--request-timeout must be a finite number, got nan"),
        (["train", "DATA", "--lr", "nan"], "--lr must be a finite number, got nan"),
        (["predict", "m.pt", "DATA", "--batch-size", "-" + "9" * 400], "--batch-size must be at least 1"),
        (["generate", "r", "--count", "1", "--size", "100000x100000"], "--size must be from 16x16 to 4096"),
        (["generate", "r", "--count", "1", "--charset", ""], "--charset is empty"),
        (["generate", "r", "--count", "1", "--length", "2-"], "--length must look like 4 or 4-6, got '2-'"),
        (["label", "DATA", "--charset", ""], "--charset is empty"),
        (["demo", "--out", "r", "--test-count", "0"], "--test-count must be at least 1, got 0"),
        (["demo", "--out", "r", "--train-count", "5"], "--train-count must be at least 20, got 5"),
        (["demo", "--out", "r", "--max-time", "-1"], "--max-time must be positive, got -1.0"),
    ],
)
def test_numbers_out_of_range_are_one_line_before_any_work(tmp_path, capsys, args, expected):
    args = [str(tmp_path / a) if a in ("DATA", "m.pt", "r") else a for a in args]
    if args[0] == "train":
        args += ["--out", str(tmp_path / "r")]
    code, err = run_cli(capsys, *args)
    assert code == 2 and expected in one_line_error(err)
    assert not (tmp_path / "r").exists()


def test_a_run_folder_given_as_model_names_its_model(tmp_path, capsys, trained_run, captcha_dir):
    onnx = str(tmp_path / "m.onnx")
    for args in (["predict", str(trained_run), str(captcha_dir)], ["export", str(trained_run), onnx]):
        code, err = run_cli(capsys, *args)
        line = one_line_error(err)
        assert code == 2 and "a folder, not a model file" in line and str(trained_run / "model.pt") in line


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "DATA", "--out", "afile"], "afile: exists and is not a folder"),
        (["train", "DATA", "--out", "afile/run"], "run: cannot be made, "),
        (["evaluate", "MODEL", "DATA", "--report", "afile/report"], "report: cannot be made, "),
        (["generate", "afile/more", "--count", "2"], "more: cannot be made, "),
        (["demo", "--out", "afile"], "afile: exists and is not a folder"),
        (["preview", "DATA", "--out", "grid.txt"], "grid.txt: --out must end in .png"),
        (["train", "afile", "--out", "old"], "afile: not a folder; DATA is a folder of labelled images"),
        (["train", "DATA", "--out", "DATA"], "--out is among the images of"),
        (["train", "DATA", "--out", "DATA/run", "--recursive"], "--out is among the images of"),
        (["evaluate", "MODEL", "DATA", "--report", "DATA"], "--report is among the images of"),
        (["preview", "DATA", "--out", "old"], "old.png: already exists"),  # matplotlib would add .png
        (["preview", "DATA", "--out", "adir"], "adir: is a folder; --out is the picture's file name"),
    ],
)
def test_outputs_that_cannot_be_written_are_one_line_before_any_work(
    tmp_path, capsys, captcha_dir, trained_run, args, expected
):
    (tmp_path / "afile").write_text("keep me")
    (tmp_path / "old.png").write_text("keep me too")
    (tmp_path / "adir").mkdir()
    data = tmp_path / "data"
    shutil.copytree(captcha_dir, data)
    paths = {"DATA": str(data), "DATA/run": str(data / "run"), "MODEL": str(trained_run / "model.pt")}
    ours = ("afile", "old", "adir", "grid.txt")  # output paths, made in tmp_path

    def where(arg: str) -> str:
        return paths.get(arg) or (str(tmp_path / arg) if arg.split("/")[0] in ours else arg)

    args = [where(a) for a in args]
    code, err = run_cli(capsys, *args)
    assert code == 2 and expected in one_line_error(err)
    assert sorted(p.name for p in data.iterdir()) == sorted(p.name for p in captcha_dir.iterdir())
    assert (tmp_path / "afile").read_text() == "keep me" and (
        tmp_path / "old.png"
    ).read_text() == "keep me too"
    assert not (tmp_path / "adir.png").exists() and not any((tmp_path / "adir").iterdir())


def test_an_evaluation_that_fails_makes_no_report_folder(tmp_path, capsys, trained_run):
    (tmp_path / "empty").mkdir()
    report = tmp_path / "new" / "report"
    code, err = run_cli(
        capsys, "evaluate", str(trained_run / "model.pt"), str(tmp_path / "empty"), "--report", str(report)
    )
    assert code == 2 and "empty" in one_line_error(err)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", ["serve", "label"])
def test_a_port_in_use_is_one_line_before_anything_starts(
    tmp_path, capsys, captcha_dir, trained_run, command
):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        target = str(trained_run / "model.pt") if command == "serve" else str(captcha_dir)
        code, err = run_cli(capsys, command, target, "--port", port)
    assert code == 2 and f"--port {port}: cannot listen" in one_line_error(err)
    assert "serving" not in err and "labelling" not in err  # no banner for a server that never ran


def test_a_model_file_of_a_newer_format_or_a_mismatched_input_says_so(tmp_path, capsys, trained_run):
    import torch

    raw = torch.load(trained_run / "model.pt", weights_only=True)
    cases = {
        "newer.pt": ({**raw, "format": "captcha-crnn/9"}, "format 'captcha-crnn/9', which this version"),
        "no-policy.pt": ({**raw, "input_policy": {}}, "damaged captcha-crnn model file (input of 1 channel"),
    }
    for name, (payload, expected) in cases.items():
        torch.save(payload, tmp_path / name)
        code, err = run_cli(capsys, "predict", str(tmp_path / name), str(tmp_path / name))
        assert code == 2 and expected in one_line_error(err)


def test_a_folder_of_only_unreadable_images_names_one_of_them(tmp_path, capsys, trained_run):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("1234.png", "5678.png"):
        (data / name).write_bytes(b"not a png")
    code, err = run_cli(capsys, "train", str(data), "--out", str(tmp_path / "r"))
    assert code == 2 and "could be read; the first unreadable one: " in one_line_error(err)
    assert str(data / "1234.png") in err or str(data / "5678.png") in err
    code, err = run_cli(capsys, "evaluate", str(trained_run / "model.pt"), str(data))
    line = one_line_error(err)
    assert code == 2 and "no readable labelled images to evaluate; the first unreadable one: " in line
    assert str(data) in line
