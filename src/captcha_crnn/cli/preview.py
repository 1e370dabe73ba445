"""`captcha-crnn preview`: a picture of a data set and its label statistics."""

from __future__ import annotations

import argparse
from pathlib import Path

from captcha_crnn.cli.common import add_label_options
from captcha_crnn.errors import CaptchaCrnnError, refuse_existing
from captcha_crnn.files import check_writable_folder

PICTURE_FORMATS = (".png", ".jpg", ".jpeg", ".svg", ".pdf")  # what matplotlib writes, by the file's suffix


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preview",
        help="a picture of a data set's images and labels, with statistics",
        description="Draw a grid of sample images with their labels and print the number of "
        "images, their sizes, label lengths, character frequencies and unreadable "
        "files.",
    )
    p.add_argument("data", type=Path, metavar="DATA", help="folder of labelled images")
    add_label_options(p)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("preview.png"),
        metavar="FILE.png",
        help="where to write the grid (default: preview.png)",
    )
    p.add_argument("--count", type=int, default=40, metavar="N", help="images in the grid (default: 40)")
    p.add_argument("--seed", type=int, default=0, help="which images are sampled (default: 0)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captcha_crnn.data.labels import collect

    if args.out.is_dir():
        raise CaptchaCrnnError(f"{args.out}: is a folder; --out is the picture's file name")
    out = args.out if args.out.suffix else args.out.with_suffix(".png")  # the file matplotlib writes
    if out.suffix.lower() not in PICTURE_FORMATS:
        raise CaptchaCrnnError(f"{out}: --out must end in {', '.join(PICTURE_FORMATS)}")
    if out.is_dir():
        raise CaptchaCrnnError(f"{out}: is a folder; --out is the picture's file name")
    refuse_existing(out, args.force, "pass --force to replace it or another --out")
    check_writable_folder(out.parent)
    if args.count < 1:
        raise CaptchaCrnnError(f"--count must be at least 1, got {args.count}")
    items = collect(args.data, args.labels, args.label_pattern, args.recursive)
    from captcha_crnn.reporting.preview import preview

    out.parent.mkdir(parents=True, exist_ok=True)
    summary = preview(items, out, args.count, args.seed)
    print("\n".join(summary.lines()))
    print(f"grid:          {out}")
    return 0
