"""`captcha-crnn generate`: synthetic labelled captchas on disk."""

from __future__ import annotations

import argparse
from pathlib import Path

from captcha_crnn.cli.common import add_style_options, style_from_options


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="write synthetic captchas (the captcha library) with labels.csv",
        description="Write synthetic captchas and a labels.csv that 'train' reads by itself.",
    )
    p.add_argument(
        "out", type=Path, metavar="OUT", help="folder to write (must not hold images or a labels file yet)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="add to a folder that holds images; no file is ever replaced, labels.csv lists the new images",
    )
    p.add_argument("--count", type=int, required=True, metavar="N", help="number of images")
    p.add_argument("--charset", help="characters to draw from (default: digits; not with --kind arithmetic)")
    add_style_options(p, in_train=False)
    p.add_argument("--seed", type=int, default=0, help="same seed, same images (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captcha_crnn.data.synthetic import generate

    labels = generate(
        args.out, args.count, style_from_options(args, args.charset), args.seed, force=args.force
    )
    print(f"wrote {args.count} images and {labels}")
    return 0
