"""Train with default settings on the shared real captcha sets and record accuracy and time.

    python benchmarks/accuracy.py            # both data sets, then regenerates BENCHMARKS.md
    python benchmarks/accuracy.py --only tii-digits

Validation split: `split_validation(items, 0.1, seed=42)`, the same seeded 90/10 split that
`captcha-crnn train DATA` makes by default (items sorted by path, shuffled with random.Random(42), the
first 10% held out). Results go to benchmarks/results/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from captcha_crnn import __version__
from captcha_crnn.cli.main import _setup_logging
from captcha_crnn.training.train import TrainOptions, train

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(RESULTS.parent))
import report  # noqa: E402  (benchmarks/report.py)

DATASETS = {"captcha-v2": "95% target (issue 2)", "tii-digits": "99% target (issue 2)"}


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


def run(name: str) -> dict:
    data = DATA / name
    if not data.is_dir():
        sys.exit(f"error: {data} not found (the shared data sets live beside the project)")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        result = train(TrainOptions(data=data, out=Path(tmp) / "run", progress=False))
        wall = time.monotonic() - start
        rows = (result.run_dir / "metrics.csv").read_text().splitlines()
        run_info = json.loads((result.run_dir / "run.json").read_text())
    m = result.val_metrics
    return {
        "dataset": name,
        "train_images": run_info["train_count"],
        "val_images": run_info["val_count"],
        "sequence_accuracy": m["sequence_accuracy"],
        "cer": m["cer"],
        "epochs": len(rows) - 1,
        "train_seconds": round(result.seconds, 1),
        "wall_seconds": round(wall, 1),
        "train_images_per_second": round(run_info["train_count"] * (len(rows) - 1) / result.seconds, 1),
        "errors": [f"{Path(e['file']).name}: {e['label']} -> {e['prediction']}" for e in m["errors"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=sorted(DATASETS), action="append", help="run only these data sets")
    args = parser.parse_args()
    _setup_logging()
    logging.getLogger("captcha_crnn").setLevel(logging.WARNING)
    out = RESULTS / "accuracy.json"
    previous = json.loads(out.read_text()) if out.exists() else {"runs": {}}
    for name in args.only or list(DATASETS):
        print(f"training on {name} ...", flush=True)
        previous["runs"][name] = run(name)
        print(json.dumps({k: v for k, v in previous["runs"][name].items() if k != "errors"}), flush=True)
    previous.update(machine=machine(), version=__version__, date=time.strftime("%Y-%m-%d"))
    report.save("accuracy", previous)


if __name__ == "__main__":
    main()
