"""Train with default settings on the shared real captcha sets and on held-out generated styles; record
accuracy, time and speed.

    python benchmarks/accuracy.py                     # everything, then regenerates BENCHMARKS.md
    python benchmarks/accuracy.py --only tii-digits   # one part: captcha-v2, tii-digits, or a style name
    python benchmarks/accuracy.py --preset nano       # a candidate, recorded apart from the defaults

Real sets: `captcha-crnn train DATA` with no options, validated on the seeded 90/10 split that `train`
makes (`split_validation(items, 0.1, seed)`: items sorted by path, shuffled with random.Random(seed), the
first 10% held out). A 72-image split is noisy (one error is 1.4%), so besides the default seed 42 each set
is trained again with `--seed 1`, `2` and `3` (a different split and initialisation each) and the mean is
reported.

Held-out styles: generated with the project's generator in styles it was never tuned on, trained with
default settings on the training folder, and tested on fresh images from another seed. They are kept here
and never used in tuning loops. Results go to benchmarks/results/accuracy.json (or accuracy-PRESET.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from captcha_crnn import __version__
from captcha_crnn.cli.main import _setup_logging
from captcha_crnn.data.labels import collect
from captcha_crnn.data.synthetic import Style, generate
from captcha_crnn.inference.evaluate import evaluate
from captcha_crnn.inference.recognizer import Recognizer
from captcha_crnn.model.presets import DEFAULT_PRESET
from captcha_crnn.training.train import TrainOptions, train

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(RESULTS.parent))
import report  # noqa: E402  (benchmarks/report.py)

REAL = ("captcha-v2", "tii-digits")
REPEAT_SEEDS = (1, 2, 3)
# Styles the defaults were never tuned on: (style, training images, fresh test images).
STYLES: dict[str, tuple[Style, int, int]] = {
    "wide-colour": (
        Style(
            charset="abcdefghjkmnpqrstuvwxyz23456789",
            length=(4, 8),
            width=(200, 550),
            height=80,
            transparent=True,
            noise_lines=(2, 5),
        ),
        3000,
        500,
    ),
    "classic-alnum": (Style(charset="abcdefghjkmnpqrstuvwxyz23456789", length=(5, 6)), 2000, 500),
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}"


def inference_speed(model_path: Path, files: list[Path]) -> dict[str, float]:
    """PyTorch images/s in batches of 64: network only (pixels already stacked) and files to text."""
    recognizer = Recognizer.load(model_path)
    files = (files * (256 // len(files) + 1))[:256]
    recognizer.predict(files[:64])  # warm-up
    start = time.perf_counter()
    recognizer.predict(files)
    files_per_s = len(files) / (time.perf_counter() - start)
    policy = recognizer.policy
    width = policy.fixed_width or policy.max_width
    batch = np.random.default_rng(0).random((64, 1, policy.height, width), dtype=np.float32)
    backend = recognizer.backend
    backend(batch)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 3:
        backend(batch)
        n += 64
    return {
        "infer_files_per_second": round(files_per_s, 1),
        "infer_network_per_second": round(n / (time.perf_counter() - start), 1),
        "infer_input": f"{width}x{policy.height}",
    }


def train_and_measure(data: Path, out: Path, seed: int, preset: str) -> tuple[dict, Path]:
    start = time.monotonic()
    result = train(TrainOptions(data=data, out=out, seed=seed, preset=preset, progress=False))
    wall = time.monotonic() - start
    epochs = len((result.run_dir / "metrics.csv").read_text().splitlines()) - 1
    run_info = json.loads((result.run_dir / "run.json").read_text())
    m = result.val_metrics
    return {
        "seed": seed,
        "train_images": run_info["train_count"],
        "val_images": run_info["val_count"],
        "sequence_accuracy": m["sequence_accuracy"],
        "cer": m["cer"],
        "epochs": epochs,
        "wall_seconds": round(wall, 1),
        "train_images_per_second": round(run_info["train_count"] * epochs / result.seconds, 1),
        "errors": [f"{Path(e['file']).name}: {e['label']} -> {e['prediction']}" for e in m["errors"]],
    }, result.model_path


def run_real(name: str, preset: str, seeds: list[int]) -> dict:
    data = DATA / name
    if not data.is_dir():
        sys.exit(f"error: {data} not found (the shared data sets live beside the project)")
    runs = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            row, model = train_and_measure(data, Path(tmp) / "run", seed, preset)
            if seed == seeds[0]:
                row.update(inference_speed(model, sorted(data.glob("*.png"))[:64]))
        print(json.dumps({k: v for k, v in row.items() if k != "errors"}), flush=True)
        runs.append(row)
    return {"dataset": name, "runs": runs, **summary(runs)}


def run_style(name: str, preset: str, seed: int = 42) -> dict:
    style, n_train, n_test = STYLES[name]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(tmp / "train", n_train, style, seed=1000)
        generate(tmp / "test", n_test, style, seed=2000)  # another seed: images the model never saw
        row, model = train_and_measure(tmp / "train", tmp / "run", seed, preset)
        test = evaluate(Recognizer.load(model), collect(tmp / "test"))
        row.update(inference_speed(model, [Path(r["file"]) for r in test.records[:64]]))
    row.update(
        test_images=n_test,
        test_sequence_accuracy=test.sequence_accuracy,
        test_cer=test.cer,
        errors=[f"{e['label']} -> {e['prediction']}" for e in test.errors[:8]],
    )
    print(json.dumps({k: v for k, v in row.items() if k != "errors"}), flush=True)
    return {"style": name, "description": describe(style, n_train, n_test), **row}


def describe(style: Style, n_train: int, n_test: int) -> str:
    w = f"{style.width[0]}" if style.width[0] == style.width[1] else f"{style.width[0]}..{style.width[1]}"
    length = (
        f"{style.length[0]}" if style.length[0] == style.length[1] else f"{style.length[0]}-{style.length[1]}"
    )
    extras = (["colour text on transparent"] if style.transparent else []) + (
        [f"{style.noise_lines[0]}-{style.noise_lines[1]} noise lines"] if style.noise_lines[1] else []
    )
    return (
        f"{length} of {len(style.charset)} symbols, {w}x{style.height}"
        + "".join(f", {e}" for e in extras)
        + f"; {n_train} training, {n_test} fresh test images"
    )


def summary(runs: list[dict]) -> dict:
    acc = [r["sequence_accuracy"] for r in runs]
    return {
        "mean_sequence_accuracy": statistics.mean(acc),
        "min_sequence_accuracy": min(acc),
        "mean_cer": statistics.mean(r["cer"] for r in runs),
        "mean_wall_seconds": statistics.mean(r["wall_seconds"] for r in runs),
        "max_wall_seconds": max(r["wall_seconds"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=[*REAL, *STYLES], action="append", help="run only these parts")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="model preset (default: the default)")
    parser.add_argument("--no-repeats", action="store_true", help="real sets: only the default seed 42")
    args = parser.parse_args()
    _setup_logging()
    logging.getLogger("captcha_crnn").setLevel(logging.WARNING)
    name = "accuracy" if args.preset == DEFAULT_PRESET else f"accuracy-{args.preset}"
    out = RESULTS / f"{name}.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    if "real" not in previous:
        previous = {"real": {}, "styles": {}}
    seeds = [42] if args.no_repeats else [42, *REPEAT_SEEDS]
    for part in args.only or [*REAL, *STYLES]:
        print(f"training on {part} ({args.preset}) ...", flush=True)
        if part in REAL:
            previous["real"][part] = run_real(part, args.preset, seeds)
        else:
            previous["styles"][part] = run_style(part, args.preset)
        previous.update(
            preset=args.preset, machine=machine(), version=__version__, date=time.strftime("%Y-%m-%d")
        )
        report.save(name, previous)  # after each part, so a long run keeps what it measured


if __name__ == "__main__":
    main()
