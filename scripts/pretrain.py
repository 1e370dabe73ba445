"""Train the general model that ships with the package, and package it.

    python scripts/pretrain.py train [--minutes 30] [--workers 14]  # starts, or resumes, runs/general-3
    python scripts/pretrain.py package                                # best weights -> weights/

Stage 3 ran on a lent GPU machine (`train --minutes 8.2 --workers 14`): the images are drawn on the CPU
cores, so more DataLoader workers, not the GPU, set the pace; on 2 CPU cores an epoch took ~3.3 min.

`train` streams captchas of the general recipe (`captcha_crnn.data.general`: a random look, size,
charset and length per image) and validates on a fixed generated set. It resumes from the run's last
checkpoint, so the job can be spread over several sessions: `--minutes` is the total training time, kept
across resumes (Lightning's timer is in the checkpoint). `package` may run while training goes on; it
writes `general.pt` (weights, charset, recipe, seed in its metadata), `general.onnx` for the slim install,
and `general.json` with both files' SHA-256, which loading checks.

The fonts come from Debian packages and OpenCV, which the shipped package does not need:
    apt-get install fonts-liberation fonts-freefont-ttf fonts-roboto-unhinted fonts-urw-base35
    pip install 'opencv-python-headless<5'   # its Hershey stroke fonts (OpenCV 5 draws others)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from captcha_crnn.data import general
from captcha_crnn.data.synthetic import Style
from captcha_crnn.options import TrainOptions

ROOT = Path(__file__).resolve().parent.parent
# Pre-training runs in stages, each a run of its own that starts from the last one's last weights:
# stage 2 because the recipe gained the Hershey fonts (a new recipe means a new validation set, whose
# losses the old run's best checkpoint and LR schedule cannot compare), stage 3 because a GPU was lent
# (16 CPU cores draw ~20x the images per minute of a 2-core CPU; drawing, not the model, is the limit).
# Stage 3 keeps stage 2's recipe and seed, so its validation set, and its figures, are stage 2's.
RUN = ROOT / "runs" / "general-3"
WEIGHTS = ROOT / "src" / "captcha_crnn" / "weights"
SEED = 20261123  # stage 1: 20261122
STYLE = Style(charset=general.CHARSET, length=(1, 10), width=(80, 400), height=32, recipe="general")
OPTIONS = {  # recorded in the model's metadata beside the recipe
    "preset": "nano",
    "synthetic": 40_000,  # generated images per epoch, fresh each epoch
    "batch_size": 128,
    "lr": 1e-3,
    "channels": 3,
    # Images keep their aspect ratio (the run began before `stretch` existed): widened for 10-character
    # labels on 80-pixel images, every image would be 3x wider and pre-training 3x slower.
    "stretch": 1.0,
    "patience": 1_000_000,  # no early stop: the time budget ends the run
    "plateau_patience": 600,  # halve the LR after ~2 epochs without a 2% lower validation loss
    "max_epochs": 10_000,
    "init": "runs/general-2/checkpoints/last.ckpt",
}
DEVICE = "one NVIDIA H100 GPU, 14 DataLoader workers drawing on 16 CPU cores"  # this stage's machine
STAGES = [  # the stages before this one: what `package` adds up, and the model's metadata records
    {
        "run": "runs/general",
        "epochs": 35,
        "images_per_epoch": 20_000,
        "seed": 20261122,
        "init": None,
        "plateau_patience": 1_500,
        "recipe": "without the Hershey fonts (hershey_share 0)",
        "minutes": 364.7,
        "device": "2 CPU cores",
        "note": "a random start; the LR stayed 1e-3 throughout",
    },
    {
        "run": "runs/general-2",
        "epochs": 11,
        "images_per_epoch": 20_000,
        "seed": SEED,
        "init": "stage 1's last weights",
        "batch_size": 64,
        "recipe": "this one",
        "minutes": 39.6,
        "device": "2 CPU cores",
        "note": "the LR halved from 1e-3 to 1.25e-4; 68.0% on the validation set at its last epoch",
    },
]


def recipe() -> dict:
    """Everything that decides the training data, for the model's metadata (JSON types throughout)."""
    record = {
        "style": asdict(STYLE),
        "seed": SEED,
        "charsets": [[chars, weight] for chars, weight in general.CHARSETS],
        "length_weights": list(general.LENGTH_WEIGHTS),
        "library_share": general.LIBRARY_SHARE,
        "hershey_share": general.HERSHEY_SHARE,
        "fonts": [Path(f).name for f in general.fonts()] + list(general.hershey_faces()),
        "font_packages": general.FONT_PACKAGES,
        "options": OPTIONS,
        "stages": STAGES,
        "device": DEVICE,
        "script": "scripts/pretrain.py",
    }
    return json.loads(json.dumps(record))


def train(minutes: float, workers: int | None = None) -> None:
    from captcha_crnn.training.train import train as run_training

    if not general.fonts():
        sys.exit(f"no fonts for the general recipe: apt-get install {general.FONT_PACKAGES}")
    if not general.hershey_faces():
        sys.exit("no Hershey fonts for the general recipe: pip install 'opencv-python-headless<5'")
    resume = (RUN / "checkpoints" / "last.ckpt").is_file()
    if not resume and not (ROOT / OPTIONS["init"]).is_file():
        sys.exit(f"{OPTIONS['init']}: the last stage's weights, which this stage starts from, are missing")
    options = dict(OPTIONS)
    if resume:  # a resume continues from the run's own weights; --init is refused there
        options.pop("init")
    else:
        options["init"] = ROOT / OPTIONS["init"]
    opts = TrainOptions(
        data=None,
        out=RUN,
        synthetic_style=STYLE,
        seed=SEED,
        max_time=minutes,
        resume=resume,
        force=not resume,  # a run killed before its first checkpoint: start it again (the folder is ours)
        progress=False,
        workers=workers,  # the images are drawn in DataLoader workers: one per spare core
        **options,
    )
    result = run_training(opts)
    metrics = result.val_metrics
    print(
        f"{result.model_path}: {result.epochs} epochs, {metrics['sequence_accuracy']:.1%} of {metrics['count']} validation images"
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package() -> None:
    """Best checkpoint so far -> general.pt + general.onnx + general.json (checksums). All three are made
    in a temporary folder first and moved in with general.json last, so a failed export never leaves
    weights that do not match their checksums."""
    import csv
    import os
    import tempfile

    from captcha_crnn.export.onnx import export
    from captcha_crnn.model.io import load_model, save_model

    best = RUN / "checkpoints" / "best.ckpt"
    if not best.is_file():
        sys.exit(f"{best}: no checkpoint yet; run `python scripts/pretrain.py train` first")
    bundle = load_model(best)
    rows = [r for r in csv.DictReader((RUN / "metrics.csv").open()) if r["val_loss"]]
    chosen = min(rows, key=lambda r: float(r["val_loss"]))  # best.ckpt is the lowest validation loss
    epochs_before = sum(stage["epochs"] for stage in STAGES)
    images_before = sum(stage["epochs"] * stage["images_per_epoch"] for stage in STAGES)
    seen = {  # all stages; the validation figures are this stage's (stage 2's validation set)
        "epochs": epochs_before + len(rows),
        "images": images_before + len(rows) * OPTIONS["synthetic"],
        "minutes": round(sum(stage["minutes"] for stage in STAGES) + float(rows[-1]["elapsed_s"]) / 60, 1),
        "best_epoch": epochs_before + int(chosen["epoch"]),
        "val_seq_acc": float(chosen["val_seq_acc"]),  # on 2000 generated images of the recipe
    }
    meta = {"name": "general", "recipe": recipe(), "trained": seen}
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WEIGHTS) as tmp:
        staged = Path(tmp)
        save_model(staged / "general.pt", bundle.model, bundle.charset, bundle.policy, meta)
        export(staged / "general.pt", staged / "general.onnx", force=True)
        manifest = {
            "name": "general",
            "files": {name: sha256(staged / name) for name in ("general.pt", "general.onnx")},
            "trained": seen,
            "recipe": recipe(),
        }
        (staged / "general.json").write_text(json.dumps(manifest, indent=2) + "\n")
        for name in ("general.pt", "general.onnx", "general.json"):
            os.replace(staged / name, WEIGHTS / name)
    print(f"packaged {WEIGHTS}: {json.dumps(seen)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="start or resume the pre-training run")
    t.add_argument("--minutes", type=float, default=30.0, help="total training time across resumes")
    t.add_argument("--workers", type=int, help="DataLoader workers drawing images (default: up to 4)")
    sub.add_parser("package", help="ship the best weights so far as package data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train(args.minutes, args.workers) if args.command == "train" else package()


if __name__ == "__main__":
    main()
