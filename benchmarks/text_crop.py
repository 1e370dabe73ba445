"""Reading small text whole or cut to it (data/textbox.py), zero-shot with a general model.

    python benchmarks/text_crop.py [--model general]   # writes results/text_crop.json, BENCHMARKS.md

Each style of benchmarks/styles.py (suite and tuning) draws 300 test images with seed 99 (no run trains
on them); the model reads each with `--charset` (both cases where the style draws either case for
lower-case labels, scored case-insensitively) and `--length` set to the style's, once with the images
whole and once cut to their text, the one setting changed. The share of images the cut changes at all is
beside it: on styles whose text fills the image it should be near 0, and their accuracy the same.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import report  # noqa: E402
from accuracy import machine  # noqa: E402
from styles import SUITE, TUNING  # noqa: E402

from captcha_crnn import __version__  # noqa: E402
from captcha_crnn.data.images import to_pixels  # noqa: E402
from captcha_crnn.data.synthetic import Renderer  # noqa: E402
from captcha_crnn.data.textbox import text_box  # noqa: E402
from captcha_crnn.inference.recognizer import Recognizer  # noqa: E402

IMAGES, SEED = 300, 99


def measure(rec: Recognizer, name: str) -> dict:
    style = {**SUITE, **TUNING}[name][0]
    renderer = Renderer(style, SEED)
    items = [renderer.sample() for _ in range(IMAGES)]
    either = style.look is not None and style.look.mixed_case
    generator = style.generator()
    charset = generator.charset + (generator.charset.upper() if either else "")
    row = {"cut": sum(text_box(to_pixels(image)) is not None for _, image in items) / IMAGES}
    base = rec.policy
    for crop in (False, True):
        rec.policy = replace(base, crop=crop)
        preds = rec.predict([image for _, image in items], charset=charset, length=generator.length)
        right = sum((p.text.lower() if either else p.text) == label for p, (label, _) in zip(preds, items))
        row["cut_to_text" if crop else "whole"] = right / IMAGES
    rec.policy = base
    print(name, row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="general", help="the model to read with (default: the shipped one)"
    )
    args = parser.parse_args()
    rec = Recognizer.load(args.model)
    results = {
        "version": __version__,
        "machine": machine(),
        "command": "python benchmarks/text_crop.py",
        "model": args.model,
        "images": IMAGES,
        "styles": {name: measure(rec, name) for name in [*SUITE, *TUNING]},
    }
    report.save("text_crop", results)
    print(f"wrote {report.write_report()}")


if __name__ == "__main__":
    main()
