"""`train` speed on a user's folder: images/s through a training step, this tree beside a baseline commit.

    python benchmarks/train_speed.py [--baseline 48b2dc5] [--epochs 8] [--way "NAME=ARGS" ...]

The issue's folder (`captcha-crnn generate DIR --count 6000 --size 200x90 --charset a-z0-9 --length 5-7
--seed 1`) is trained with plain `captcha-crnn train DIR --max-epochs E --seed 0` of each commit, each in
a fresh interpreter that imports that commit's `src` (the baseline from a temporary git worktree). A
callback added to the trainer times each training step from batch start to batch end (forward, backward,
optimiser, augmentation and the weight average; not data loading), after the first epoch's first 20 steps;
images/s counts every process's images (a run of N processes: N x its batches). Epoch time comes from the
run's metrics.csv (validation included). Each model is then read on 1000 other images of the same style
(`--seed 2`), with the reader of its own commit, so a faster way must also train as well.

This tree's ways train the network the baseline chose by itself (SAME_NETWORK: nano at height 32, as
48b2dc5 did): the issue compares speed with the network and input size held fixed, and today's defaults
choose a larger network for this folder (the reader's size at height 80). `--way "bf16=--precision bf16"`
adds a way: this tree with extra `train` arguments.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache" / "train_speed"
sys.path.insert(0, str(BENCH))

FOLDER = ["--count", "6000", "--size", "200x90", "--charset", "abcdefghijklmnopqrstuvwxyz0123456789",
          "--length", "5-7"]  # fmt: skip
TEST_IMAGES, WARMUP = 1000, 20
SAME_NETWORK = ["--preset", "nano", "--height", "32"]  # what 48b2dc5 chose for the folder by itself

# Run in a fresh interpreter with `src` first on sys.path, so each way imports its own commit's code. In a
# run of several processes Lightning starts the others by running this same file again.
WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, sys.argv[1])
    import lightning as L
    from captcha_crnn.cli.main import main

    out, warmup = sys.argv[2], int(sys.argv[3])

    class Clock(L.Callback):
        def __init__(self):
            self.seconds, self.images, self.steps = 0.0, 0, 0
        def on_train_batch_start(self, trainer, module, batch, i):
            self.start = time.perf_counter()
        def on_train_batch_end(self, trainer, module, outputs, batch, i):
            self.steps += 1
            if self.steps > warmup:
                self.seconds += time.perf_counter() - self.start
                self.images += batch["images"].shape[0] * trainer.world_size
        def on_train_end(self, trainer, module):
            if trainer.is_global_zero:
                with open(os.path.join(out, "clock.json"), "w") as fh:
                    json.dump({"images": self.images, "seconds": self.seconds,
                               "world_size": trainer.world_size, "threads": __import__("torch").get_num_threads()}, fh)

    init = L.Trainer.__init__
    def patched(self, *a, **k):
        k["callbacks"] = [*(k.get("callbacks") or []), Clock()]
        init(self, *a, **k)
    L.Trainer.__init__ = patched
    code = main(sys.argv[4:])
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        from captcha_crnn.data.labels import collect
        from captcha_crnn.inference.evaluate import evaluate
        from captcha_crnn.inference.recognizer import Recognizer
        m = evaluate(Recognizer.load(os.path.join(out, "model.pt")), collect(os.environ["TEST_DIR"]))
        with open(os.path.join(out, "test.json"), "w") as fh:
            json.dump({"test_sequence_accuracy": m.sequence_accuracy, "test_cer": m.cer, "test_images": m.count}, fh)
    sys.exit(code)
    """
)


def folder(seed: int, count: int) -> Path:
    """The issue's generated folder (cached: the same images for every way and every run)."""
    path = CACHE / f"seed{seed}-{count}"
    if not (path / "labels.csv").is_file() and not any(path.glob("*.png")):
        args = ["generate", str(path), *FOLDER, "--seed", str(seed)]
        args[args.index("--count") + 1] = str(count)
        subprocess.run([sys.executable, "-m", "captcha_crnn", *args], check=True, capture_output=True)
    return path


def run(name: str, src: Path, extra: list[str], data: Path, test: Path, epochs: int) -> dict:
    """One way: train, time its steps, read the test folder."""
    import csv

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        worker = Path(tmp) / "worker.py"
        worker.write_text(WORKER)
        train = ["train", str(data), "--out", str(out), "--max-epochs", str(epochs), "--seed", "0"]
        cmd = [sys.executable, str(worker), str(src), str(out), str(WARMUP), *train, "--no-progress", *extra]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**_env(), "TEST_DIR": str(test)})
        if done.returncode:
            sys.exit(f"{name}: {done.stderr[-3000:]}")
        clock = json.loads((out / "clock.json").read_text())
        test_result = json.loads((out / "test.json").read_text())
        with (out / "metrics.csv").open(newline="") as fh:
            elapsed = [float(row["elapsed_s"]) for row in csv.DictReader(fh)]
        record = json.loads((out / "run.json").read_text())
        choices, policy = record.get("choices", {}), record.get("input_policy", {})
    epoch_s = [b - a for a, b in zip([0.0, *elapsed], elapsed)]
    return {
        "args": shlex.join(extra),
        "images_per_s": clock["images"] / clock["seconds"],
        "timed_images": clock["images"],
        "processes": clock["world_size"],
        "threads_per_process": clock["threads"],
        "epochs": len(elapsed),
        "mean_epoch_s": sum(epoch_s[1:]) / max(1, len(epoch_s) - 1),  # the first includes start-up
        "total_s": elapsed[-1] if elapsed else 0.0,
        "model_choice": choices.get("model"),
        "input": _input(policy),
        **test_result,
    }


def _input(policy: dict) -> str:
    """'168x32 colour' (or '80..400x32 grey'): the input as the run's policy recorded it."""
    if not policy:
        return "?"
    lo, hi = policy.get("min_width"), policy.get("max_width")
    width = f"{lo}" if lo == hi else f"{lo}..{hi}"
    return f"{width}x{policy.get('height')} {'colour' if policy.get('channels', 1) == 3 else 'grey'}"


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}


def main() -> None:
    import report
    from accuracy import machine
    from common import worktree

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="48b2dc5", help="the commit this tree is compared with")
    parser.add_argument("--epochs", type=int, default=8, help="epochs each way trains (default: 8)")
    parser.add_argument("--way", action="append", default=[], metavar="NAME=ARGS",
                        help="also this tree with these extra train arguments")  # fmt: skip
    args = parser.parse_args()
    extra_ways = [w.split("=", 1) for w in args.way]
    if any(len(w) != 2 for w in extra_ways):
        sys.exit("--way is NAME=ARGS, e.g. 'bf16=--precision bf16'")
    data, test = folder(1, 6000), folder(2, TEST_IMAGES)
    results: dict = {
        "machine": machine(),
        "command": "python benchmarks/train_speed.py " + shlex.join(sys.argv[1:]),
        "baseline": args.baseline,
        "epochs": args.epochs,
        "folder": "captcha-crnn generate DIR " + shlex.join(FOLDER) + " --seed 1",
        "ways": {},
    }
    with worktree(args.baseline) as tree:
        ways = [(args.baseline, tree / "src", []), ("this tree", ROOT / "src", SAME_NETWORK)]
        ways += [
            (f"this tree, {name}", ROOT / "src", [*SAME_NETWORK, *shlex.split(extra)])
            for name, extra in extra_ways
        ]
        for name, src, extra in ways:
            r = run(name, src, extra, data, test, args.epochs)
            results["ways"][name] = r
            print(name, json.dumps(r), flush=True)
    base = results["ways"][args.baseline]["images_per_s"]
    for r in results["ways"].values():
        r["speed_up"] = r["images_per_s"] / base
    report.save("train_speed", results)
    print(f"wrote {report.write_report()}")


if __name__ == "__main__":
    main()
