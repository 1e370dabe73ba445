"""Scale and reliability: DDP, streamed synthetic data, lazy loading, crash-safe checkpoints, safe loading."""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from captcha_crnn.cli.main import main
from captcha_crnn.data.images import InputPolicy
from captcha_crnn.data.labels import collect, split_validation
from captcha_crnn.data.synthetic import Style
from captcha_crnn.data.tokenizer import CTCTokenizer
from captcha_crnn.errors import ModelFileError
from captcha_crnn.inference.evaluate import evaluate
from captcha_crnn.inference.recognizer import Recognizer
from captcha_crnn.model.io import atomic_torch_save, load_model
from captcha_crnn.training.datamodule import SyntheticStream

STYLE = Style(length=(3, 4), width=(80, 80), height=32)
POLICY = InputPolicy(32, 80, 80, 4)


def cli(
    *args: str, timeout: float = 240, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "captcha_crnn", "-q", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------- distributed


def test_ddp_two_processes_on_cpu_reduce_metrics_over_all_images(tmp_path, captcha_dir):
    """Two gloo processes train to a checkpoint that loads and predicts; the logged validation metrics
    cover the whole validation split (both processes' halves), not rank 0's share. Without --out, the
    second process (started by Lightning seconds later) names another timestamped folder, but everything
    is written to rank 0's."""
    work = tmp_path / "work"
    work.mkdir()
    proc = cli(
        "train", str(captcha_dir), "--devices", "2", "--accelerator", "cpu",
        "--max-epochs", "2", "--batch-size", "8", "--no-progress", cwd=work,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = list((work / "runs").iterdir())
    assert len(folders) == 1, folders
    run = folders[0]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    val_items = split_validation(collect(captcha_dir), 0.1, 42)[1]
    assert len(val_items) >= 3  # an odd split: rank 0 validates 3, rank 1 validates 2
    last = rows(run)[-1]
    assert int(float(last["val_images"])) == len(val_items)

    # The reduced CER equals the CER of the saved last checkpoint over the whole split.
    recognizer = Recognizer.load(run / "checkpoints" / "last.ckpt")
    whole = evaluate(recognizer, val_items)
    assert float(last["val_cer"]) == pytest.approx(whole.cer, abs=1e-6)
    assert float(last["val_loss"]) == pytest.approx(whole.loss, rel=1e-3)

    prediction = Recognizer.load(run / "model.pt").predict(val_items[0].path)
    assert isinstance(prediction.text, str)
    assert proc.stdout.count("model:") == 1  # one voice: only rank 0 reports


def test_default_train_on_a_cpu_forks_two_processes_that_validate_every_image(tmp_path, captcha_dir):
    """Plain `train` on this multi-core CPU: two forked processes (the images read once, before the fork),
    their validation reduced over the whole split, the reason in run.json; model.pt reads."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU core: train uses one process")
    run = tmp_path / "run"
    proc = cli("train", str(captcha_dir), "--out", str(run), "--max-epochs", "1", "--batch-size", "8",
               "--no-progress", "--accelerator", "cpu")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    choice = json.loads((run / "run.json").read_text())["choices"]["hardware"]
    assert choice.startswith("2 processes of"), choice
    val_items = split_validation(collect(captcha_dir), 0.1, 42)[1]
    assert int(float(rows(run)[-1]["val_images"])) == len(val_items)
    assert isinstance(Recognizer.load(run / "model.pt").predict(val_items[0].path).text, str)
    assert load_model(run / "model.pt").meta["trained_epochs"] == 1  # counted by the forked processes


def test_bf16_training_runs_under_autocast_and_keeps_float32_weights(tmp_path, captcha_dir, monkeypatch):
    """--precision bf16: the forward pass runs under bfloat16 autocast, the saved weights stay float32
    and read like any model; the option is recorded with the run."""
    from captcha_crnn.model.crnn import CRNN

    seen = []
    forward = CRNN.forward

    def spy(self, images):
        out = forward(self, images)
        if self.training:
            seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return out

    monkeypatch.setattr(CRNN, "forward", spy)
    run = tmp_path / "run"
    code = main(["-q", "train", str(captcha_dir), "--out", str(run), "--max-epochs", "1", "--batch-size", "16",
                 "--no-progress", "--precision", "bf16", "--devices", "1"])  # fmt: skip
    assert code == 0
    assert seen and all(on and dtype == torch.bfloat16 for on, dtype in seen), seen[:3]
    bundle = load_model(run / "model.pt")
    assert {p.dtype for p in bundle.model.parameters()} == {torch.float32}
    assert json.loads((run / "run.json").read_text())["options"]["precision"] == "bf16"
    assert all(np.isfinite(float(r["train_loss"])) for r in rows(run))


# ---------------------------------------------------------------- streamed synthetic data


def stream(seed: int = 3, count: int = 40, **kw) -> SyntheticStream:
    return SyntheticStream(STYLE, count, CTCTokenizer("0123456789"), POLICY, seed, **kw)


def labels_of(samples) -> list[tuple[int, ...]]:
    return [tuple(target) for _, target, _ in samples]


def test_synthetic_stream_is_reproducible_per_seed_epoch_and_rank():
    first, again = list(stream()), list(stream())
    assert len(first) == 40
    assert labels_of(first) == labels_of(again)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert labels_of(stream(seed=4)) != labels_of(first)
    later = stream()
    later.epoch = 1
    assert labels_of(later) != labels_of(first)  # fresh captchas each epoch

    shards = []
    for rank in (0, 1):
        part = stream()
        part.rank, part.world_size = rank, 2
        shards.append(labels_of(part))
    assert [len(s) for s in shards] == [20, 20]  # the epoch's 40 split across two processes
    assert shards[0] != shards[1]

    uneven = []
    for rank in (0, 1):
        part = stream(count=33)
        part.rank, part.world_size = rank, 2
        uneven.append(len(list(part)))
    assert uneven == [17, 17]  # equal shares, or one DDP process would wait for a batch that never comes


def test_synthetic_stream_with_workers_yields_each_epoch_once_and_reproducibly():
    def epoch() -> list[tuple[int, ...]]:
        loader = DataLoader(stream(count=30), batch_size=None, num_workers=2)
        return [tuple(target) for _, target, _ in loader]

    one, two = epoch(), epoch()
    assert len(one) == 30  # split across the workers, not repeated by each
    assert one == two


def test_synthetic_stream_mixes_real_images_at_the_ratio():
    class Real:
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int):
            return np.zeros((32, 80), np.uint8), [1, 2, 3], i

    mixed = list(stream(count=30, real=Real(), mix=0.75))  # type: ignore[arg-type]
    real = [index for _, _, index in mixed if index >= 0]
    assert len(mixed) == 40 and len(real) == 10  # 30 generated : 10 real = 75% generated
    assert sorted(set(real)) == [0, 1, 2, 3, 4]  # real images cycle through the whole folder


def test_train_on_generated_data_only_writes_no_images(tmp_path):
    run = tmp_path / "run"
    code = main(
        ["-q", "train", "--synthetic", "64", "--length", "3", "--size", "80x32", "--out", str(run),
         "--max-epochs", "1", "--batch-size", "16", "--workers", "0", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    info = json.loads((run / "run.json").read_text())
    assert info["train_count"] == 64 and info["val_count"] == 200
    assert rows(run)[0]["val_images"] == "200"
    images = [p for p in tmp_path.rglob("*") if p.suffix in {".png", ".jpg"} and p.name != "curves.png"]
    assert not images
    assert Recognizer.load(run / "model.pt").charset == "0123456789"


def test_train_mixes_generated_with_a_real_folder(tmp_path, captcha_dir):
    run = tmp_path / "run"
    code = main(
        ["-q", "train", str(captcha_dir), "--synthetic", "30", "--mix", "0.5", "--out", str(run),
         "--max-epochs", "1", "--batch-size", "16", "--workers", "0", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    info = json.loads((run / "run.json").read_text())
    assert info["train_count"] == 60  # 30 generated + 30 real per epoch
    assert info["val_count"] == len(split_validation(collect(captcha_dir), 0.1, 42)[1])


def test_generated_style_too_long_for_the_input_is_refused(tmp_path, capsys):
    # 16x32, widened at most 3 times: 12 frames, where 12 characters may need 23
    code = main(
        ["train", "--synthetic", "10", "--length", "12", "--size", "16x32", "--out", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: generated 12-character captchas") and "\n" not in err


# ---------------------------------------------------------------- lazy loading


def test_lazy_loading_trains_exactly_like_in_memory(tmp_path, captcha_dir):
    base = ["-q", "train", str(captcha_dir), "--max-epochs", "2", "--batch-size", "16", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "mem")]) == 0
    assert main([*base, "--out", str(tmp_path / "lazy"), "--lazy", "--workers", "0"]) == 0
    mem, lazy = rows(tmp_path / "mem"), rows(tmp_path / "lazy")
    assert [r["train_loss"] for r in mem] == [r["train_loss"] for r in lazy]
    assert [r["val_loss"] for r in mem] == [r["val_loss"] for r in lazy]


def test_lazy_loading_skips_a_file_that_breaks_after_its_header(tmp_path, captcha_dir, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for png in sorted(captcha_dir.glob("*.png"))[:24]:
        (data / png.name).write_bytes(png.read_bytes())
    victim = sorted(data.glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:80])  # header intact, pixels gone
    labels = [line for line in (captcha_dir / "labels.csv").read_text().splitlines() if line.split(",")[0] in
              {p.name for p in data.glob("*.png")} or line.startswith("file,")]  # fmt: skip
    (data / "labels.csv").write_text("\n".join(labels) + "\n")
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--lazy", "--workers", "0", "--max-epochs", "1"]
    # one process: a forked one's warnings reach the terminal, not this test's in-memory capture
    assert main([*args, "--no-progress", "--val-split", "0.2", "--devices", "1"]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipped while training: {victim}: corrupt or truncated image" in err


# ---------------------------------------------------------------- crash safety


def _running_with(text: str) -> list[int]:
    """Live processes whose command line holds `text` (Linux /proc)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace") and not _zombie(cmdline.parent):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def _zombie(proc: Path) -> bool:
    try:
        return " Z " in (proc / "stat").read_text()
    except OSError:
        return True


def test_sigkill_mid_run_then_resume_completes(tmp_path, captcha_dir):
    """Kill a real training process with SIGKILL, then --resume: the run completes, every epoch appears
    once in metrics.csv, and the best checkpoint loads."""
    run = tmp_path / "run"
    args = [
        "train",
        str(captcha_dir),
        "--out",
        str(run),
        "--max-epochs",
        "6",
        "--batch-size",
        "8",
        "--no-progress",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "captcha_crnn", "-q", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    last = run / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10  # the processes it forked to train end with it (torch's PDEATHSIG)
    while _running_with(str(run)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running_with(str(run)), "forked training processes outlived their parent"
    assert not (run / "model.pt").exists()
    load_model(last)  # whole, whatever moment the kill hit
    # a kill in the middle of a save leaves its temporary file: planted here so the clean-up always runs
    (run / "checkpoints" / ".best.ckpt.99999.tmp").write_bytes(b"PK\x03\x04 partial")

    resumed = cli(*args, "--resume", env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not list(run.rglob("*.tmp"))  # the killed save's temporary file is gone
    assert [r["epoch"] for r in rows(run)] == ["1", "2", "3", "4", "5", "6"]
    assert load_model(run / "checkpoints" / "best.ckpt").charset == "0123456789"
    assert (run / "model.pt").is_file()


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "best.ckpt"
    atomic_torch_save({"epoch": 1}, target)
    before = target.read_bytes()

    def dies_halfway(obj, fh, *a, **kw):
        fh.write(b"PK\x03\x04 partial")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError):
        atomic_torch_save({"epoch": 2}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["best.ckpt"]  # no temporary file left


# ---------------------------------------------------------------- safe loading


class Payload:
    """Unpickling this runs a command: what a tampered checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", ["model.pt", "best.ckpt"])
def test_pickled_code_in_a_model_file_is_refused_and_never_runs(tmp_path, name):
    marker = tmp_path / "pwned"
    evil = tmp_path / name
    torch.save({"format": "captcha-crnn/1", "state_dict": {}, "x": Payload(marker)}, evil)
    with pytest.raises(ModelFileError, match="not a captcha-crnn model file"):
        load_model(evil)
    evil.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ModelFileError):
        load_model(evil)
    assert not marker.exists()


def test_resume_refuses_a_tampered_last_checkpoint(tmp_path, captcha_dir, capsys):
    run = tmp_path / "run"
    args = ["train", str(captcha_dir), "--out", str(run), "--max-epochs", "1", "--no-progress"]
    assert main(["-q", *args]) == 0
    marker = tmp_path / "pwned"
    torch.save(
        {"hyper_parameters": {}, "state_dict": {}, "x": Payload(marker)}, run / "checkpoints" / "last.ckpt"
    )
    capsys.readouterr()
    assert main([*args, "--max-epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "last.ckpt" in err and "\n" not in err
    assert not marker.exists()


def test_max_time_mid_epoch_still_leaves_a_validated_model(tmp_path, captcha_dir):
    run = tmp_path / "run"
    args = ["-q", "train", str(captcha_dir), "--out", str(run), "--max-time", "0.0001", "--batch-size", "4"]
    assert main([*args, "--no-progress"]) == 0
    assert len(rows(run)) == 1  # Lightning validates the interrupted epoch
    assert Recognizer.load(run / "model.pt").charset == "0123456789"
