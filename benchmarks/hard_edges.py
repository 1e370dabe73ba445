"""Glyphs with hard edges (no antialiasing), read by a general model with no training, beside the same blurred.

    python benchmarks/hard_edges.py [--model general]   # adds the model's row to results/hard_edges.json

Thin strokes with hard edges are how cv2.putText draws text by default, and many home-made captchas are
drawn so. Each look below draws 300 images of 4 digits (seed 99, our own generator: no held-out image),
crisp or blurred (a Gaussian of 0.7 px, the one change), with a margin around the text or cut tight to
it; the model reads them with `--charset 0-9 --length 4`. The recipe draws looks like these (its
`aliased` share since stage 9), so this is a check of what pre-training learnt, not a zero-shot claim.
Rows accumulate by model (the shipped one named by its stage, from general.json; others by --label),
so stages can be compared.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

from PIL import ImageFilter

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import report  # noqa: E402
from accuracy import machine  # noqa: E402

from captcha_crnn import __version__  # noqa: E402
from captcha_crnn.data.looks import Look, draw  # noqa: E402
from captcha_crnn.inference.recognizer import Recognizer  # noqa: E402
from captcha_crnn.weights import manifest  # noqa: E402

IMAGES, SEED, SIZE = 300, 99, (104, 24)
# 1 px strokes through small digits, a thin line and dots, as cv2.putText draws by default
HERSHEY = Look(
    fonts=("hershey-simplex",),
    size=(0.75, 0.8),
    spacing=(0.3, 0.5),
    strike_lines=(1, 1),
    line_width=(1, 1),
    dots=0.03,
    aliased=True,
)
LOOKS = {
    "hershey, margin": HERSHEY,
    "hershey, tight": replace(HERSHEY, crop=0.0),
    "truetype, rotated": Look(
        fonts=("dejavu-sans", "dejavu-serif"),
        size=(0.6, 0.75),
        rotation=15,
        strike_lines=(1, 2),
        line_width=(1, 1),
        aliased=True,
    ),
}


def measure(rec: Recognizer, look: Look) -> dict[str, float]:
    """The share of the look's images read right, crisp and blurred: the blur is the only difference."""
    rng = random.Random(SEED)
    labels = ["".join(rng.choice("0123456789") for _ in range(4)) for _ in range(IMAGES)]
    images = [draw(look, label, *SIZE, rng) for label in labels]
    row: dict[str, float] = {}
    for name, shown in (
        ("crisp", images),
        ("blurred", [i.filter(ImageFilter.GaussianBlur(0.7)) for i in images]),
    ):
        preds = rec.predict(shown, charset="0123456789", length=(4, 4))
        row[name] = sum(p.text == label for p, label in zip(preds, labels)) / IMAGES
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="general", help="the model to read with (default: the shipped one)"
    )
    parser.add_argument("--label", help="the row's name (default: the shipped model's stage, or --model)")
    args = parser.parse_args()
    rec = Recognizer.load(args.model)
    shipped = args.model == "general" and not args.label
    name = f"general, stage {manifest()['trained']['stage']}" if shipped else args.label or args.model
    path = BENCH / "results" / "hard_edges.json"
    data = json.loads(path.read_text()) if path.exists() else {"models": {}}
    data["models"][name] = {look: measure(rec, LOOKS[look]) for look in LOOKS}
    print(json.dumps(data["models"][name]), flush=True)
    data.update(
        version=__version__, machine=machine(), command="python benchmarks/hard_edges.py", images=IMAGES
    )
    report.save("hard_edges", data)


if __name__ == "__main__":
    main()
