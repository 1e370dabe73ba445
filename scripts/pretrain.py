"""Train the general model that ships with the package, and package it.

    python scripts/pretrain.py train [--minutes 85]   # starts, or resumes, runs/general-2 (stage 2)
    python scripts/pretrain.py package                 # best weights -> src/captcha_crnn/weights/

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
# Pre-training ran in two stages: the recipe gained the Hershey fonts after stage 1, and a new recipe
# means a new validation set, whose losses the old run's best checkpoint and LR schedule cannot compare.
# Stage 2 starts from stage 1's last weights with fresh ones of each (STAGES records both).
STAGE_1 = ROOT / "runs" / "general"
RUN = ROOT / "runs" / "general-2"
WEIGHTS = ROOT / "src" / "captcha_crnn" / "weights"
SEED = 20261123  # stage 1: 20261122
STYLE = Style(charset=general.CHARSET, length=(1, 10), width=(80, 400), height=32, recipe="general")
OPTIONS = {  # recorded in the model's metadata beside the recipe
    "preset": "nano",
    "synthetic": 20_000,  # generated images per epoch, fresh each epoch
    "batch_size": 64,
    "lr": 1e-3,
    "channels": 3,
    # Images keep their aspect ratio (the run began before `stretch` existed): widened for 10-character
    # labels on 80-pixel images, every image would be 3x wider and pre-training 3x slower.
    "stretch": 1.0,
    "patience": 1_000_000,  # no early stop: the time budget ends the run
    "plateau_patience": 600,  # halve the LR after ~2 epochs without a 2% lower validation loss
    "max_epochs": 10_000,
    "init": str(STAGE_1.relative_to(ROOT) / "checkpoints" / "last.ckpt"),
}
STAGES = [
    {
        "run": "runs/general",
        "epochs": 35,
        "seed": 20261122,
        "init": None,
        "plateau_patience": 1_500,
        "recipe": "without the Hershey fonts (hershey_share 0)",
        "minutes": 364.7,
        "note": "a random start; the LR stayed 1e-3 throughout",
    },
    {"run": "runs/general-2", "seed": SEED, "init": "stage 1's last weights", "recipe": "this one"},
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
        "script": "scripts/pretrain.py",
    }
    return json.loads(json.dumps(record))


def train(minutes: float) -> None:
    from captcha_crnn.training.train import train as run_training

    if not general.fonts():
        sys.exit(f"no fonts for the general recipe: apt-get install {general.FONT_PACKAGES}")
    if not general.hershey_faces():
        sys.exit("no Hershey fonts for the general recipe: pip install 'opencv-python-headless<5'")
    resume = (RUN / "checkpoints" / "last.ckpt").is_file()
    if not resume and not (ROOT / OPTIONS["init"]).is_file():
        sys.exit(f"{OPTIONS['init']}: stage 1's weights, which stage 2 starts from, are missing")
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
        **options,
    )
    result = run_training(opts)
    print(f"general model: {result}")


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
    first = STAGES[0]
    seen = {  # both stages; the validation figures are stage 2's
        "epochs": first["epochs"] + len(rows),
        "images": (first["epochs"] + len(rows)) * OPTIONS["synthetic"],
        "minutes": round(first["minutes"] + float(rows[-1]["elapsed_s"]) / 60, 1),
        "best_epoch": first["epochs"] + int(chosen["epoch"]),
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
    t.add_argument("--minutes", type=float, default=85.0, help="total training time across resumes")
    sub.add_parser("package", help="ship the best weights so far as package data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train(args.minutes) if args.command == "train" else package()


if __name__ == "__main__":
    main()
