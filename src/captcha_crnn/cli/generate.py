"""`captcha-crnn generate`: synthetic labelled captchas on disk."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from captcha_crnn.errors import CaptchaCrnnError

if TYPE_CHECKING:
    from captcha_crnn.data.synthetic import Style


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
    p.add_argument(
        "--kind",
        choices=("text", "arithmetic"),
        default="text",
        help="text: random strings of --charset; arithmetic: expressions such as 12×4= or 3+8=? (operands "
        "0-99, + - x * × ÷ /, optional = and ?), labelled as drawn (default: text)",
    )
    p.add_argument("--charset", help="characters to draw from (default: digits; not with --kind arithmetic)")
    p.add_argument("--length", help="label length, e.g. 4 or 4-6 (default: 4; not with --kind arithmetic)")
    p.add_argument(
        "--size",
        default="160x60",
        metavar="WxH",
        help="image size; a width range such as 200-550x80 draws each image's width (default: 160x60)",
    )
    p.add_argument(
        "--transparent", action="store_true", help="colour text on a transparent background (RGBA PNGs)"
    )
    p.add_argument(
        "--noise-lines", default="0", metavar="N", help="extra lines per image, e.g. 2-5 (default: 0)"
    )
    p.add_argument("--seed", type=int, default=0, help="same seed, same images (default: 0)")
    p.set_defaults(func=run)


def style_from_args(args: argparse.Namespace) -> Style:
    from captcha_crnn.data.synthetic import DIGITS, Style, parse_length, parse_range, parse_size

    kind = getattr(args, "kind", "text")  # train --synthetic shares this function and has no --kind
    if kind == "arithmetic":
        given = [
            option for option, value in (("--charset", args.charset), ("--length", args.length)) if value
        ]
        if given:
            raise CaptchaCrnnError(
                f"{' and '.join(given)}: not for --kind arithmetic, whose expressions have their own "
                "characters and lengths"
            )
    if args.charset == "":
        raise CaptchaCrnnError("--charset is empty; leave it out for digits")
    width, height = parse_size(args.size)
    return Style(
        charset=args.charset or DIGITS,
        length=parse_length(args.length or "4"),
        width=width,
        height=height,
        transparent=args.transparent,
        noise_lines=parse_range(args.noise_lines, "--noise-lines"),
        kind=kind,
    )


def run(args: argparse.Namespace) -> int:
    from captcha_crnn.data.synthetic import generate

    labels = generate(args.out, args.count, style_from_args(args), args.seed, force=args.force)
    print(f"wrote {args.count} images and {labels}")
    return 0
