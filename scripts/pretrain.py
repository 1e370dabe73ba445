"""Produce the pre-trained weights that `train` starts from: src/captcha_crnn/model/pretrained/<preset>.pt.

    python scripts/pretrain.py                 # the default preset, about 25 minutes on 2 CPU cores

It runs `captcha-crnn train --synthetic` on a broad generated style (62 letters and digits, 4-7
characters, widths 120-260, light noise lines) with a fixed seed and a fixed number of epochs, then keeps
the model file. Fine-tuning from these weights skips CTC's long all-blank start on a user's small set:
the convolutions already find strokes and the recurrent layers already emit one character per glyph.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHARSET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="nano")
    parser.add_argument("--per-epoch", type=int, default=16000, help="generated captchas per epoch")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    out = ROOT / "src" / "captcha_crnn" / "model" / "pretrained" / f"{args.preset}.pt"
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [
            sys.executable, "-m", "captcha_crnn", "train", "--synthetic", str(args.per_epoch),
            "--charset", CHARSET, "--length", "4-7", "--size", "120-260x60", "--noise-lines", "0-2",
            "--preset", args.preset, "--init", "none", "--max-epochs", str(args.epochs),
            "--patience", "1000", "--seed", str(args.seed), "--workers", str(args.workers),
            "--out", str(run), "--no-progress",
        ]  # fmt: skip
        subprocess.run(cmd, check=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "model.pt", out)
        shutil.copyfile(run / "metrics.csv", out.with_suffix(".metrics.csv"))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
