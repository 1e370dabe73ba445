"""`captcha-crnn predict`: the text in images, streamed a chunk at a time."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from captcha_crnn.cli.common import (
    add_model_argument,
    add_reading_options,
    check_numbers,
    load_recognizer,
)
from captcha_crnn.errors import warn_skipped


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="read the text in images",
        description="Print 'path<TAB>text<TAB>confidence' for each image (files, or every "
        "image in the folders given); with --solve, a fourth column: the answer.",
    )
    add_model_argument(p)
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--recursive", action="store_true", help="also look for images in subfolders")
    p.add_argument("--json", action="store_true", help='JSON lines: {"file", "text", "confidence"}')
    add_reading_options(
        p,
        "also print the value of the expression read (arithmetic captchas: 12×4= -> 48), or ? when "
        'it does not parse; --json adds "answer" (null, with "answer_error", when it does not parse)',
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from captcha_crnn.data.labels import find_images
    from captcha_crnn.inference.evaluate import progress_bar

    check_numbers(args, at_least_1=("batch_size",))
    recognizer, reading = load_recognizer(args)
    for path in args.paths:  # a file named directly must exist and be readable: checked before any output
        if not path.is_dir():
            recognizer.preprocess(path)
    files = [
        found
        for path in args.paths
        for found in (find_images(path, args.recursive) if path.is_dir() else [path])
    ]
    skipped = []
    # Streamed: a chunk is decoded, read and printed before the next, so a folder of any
    # size prints from the start and memory stays flat.
    bar = not sys.stdout.isatty()  # a bar beside lines printed to the same terminal would garble both
    for path, log_probs in progress_bar(recognizer.stream(files), len(files), "reading", bar):
        if isinstance(log_probs, Exception):
            skipped.append(str(log_probs))
            continue
        pred = reading.decode(log_probs)
        if args.json:
            print(json.dumps({"file": str(path), **pred.to_dict()}))
            continue
        name = _tsv_field(str(path))
        if args.solve:
            shown = "?" if pred.answer is None else pred.answer
            print(f"{name}\t{pred.text}\t{pred.confidence:.4f}\t{shown}")
        else:
            print(f"{name}\t{pred.text}\t{pred.confidence:.4f}")
    warn_skipped(skipped)
    return 0


def _tsv_field(text: str) -> str:
    """A file name as one TSV field: a tab, newline or backslash in it is escaped (as in
    PostgreSQL's text format), so a line is always one image."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
