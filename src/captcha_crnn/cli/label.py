"""`captcha-crnn label`: a labelling workbench in the browser, the model's reading pre-filled."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from captcha_crnn.errors import CaptchaCrnnError, one_line


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "label",
        help="label a folder of images in the browser, with the model's suggestions",
        description="Serve a page that shows each image of DIR with the model's reading typed in: Enter "
        "accepts it, typing replaces it. Labels go to DIR/labels.csv after every image (atomically), "
        "which `train DIR` reads; the images are never renamed, moved or changed.",
    )
    p.add_argument("folder", type=Path, metavar="DIR", help="folder of images to label")
    p.add_argument(
        "--model",
        default="general",
        help="what makes the suggestions: 'general' (the shipped model), a model file, or 'none' "
        "(default: general)",
    )
    p.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="labels file (default: DIR/labels.csv, or an existing DIR/labels.tsv)",
    )
    p.add_argument("--charset", metavar="CHARS", help="characters a label may have; suggestions keep to them")
    p.add_argument(
        "--order",
        default="confidence",
        choices=["confidence", "name"],
        help="least certain suggestions first, or by file name (default: confidence)",
    )
    p.add_argument(
        "--retrain-every",
        type=int,
        default=0,
        metavar="N",
        help="fine-tune on the labels so far after every N new labels (default: 0, only on request)",
    )
    p.add_argument(
        "--review",
        action="store_true",
        help="read-only: walk the labelled images, those the model reads differently first",
    )
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="also show images that are symlinks to files outside DIR (off by default: with --host "
        "0.0.0.0 anyone who reaches the page could read those files)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8100, help="port (default: 8100)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import importlib.util

    import uvicorn

    from captcha_crnn.cli.common import check_address
    from captcha_crnn.data.labels import find_images
    from captcha_crnn.inference.recognizer import Recognizer
    from captcha_crnn.labelling.app import create_label_app
    from captcha_crnn.labelling.retrain import Retrainer
    from captcha_crnn.labelling.store import LabelStore
    from captcha_crnn.labelling.workbench import Workbench

    if args.retrain_every < 0:
        raise CaptchaCrnnError(f"--retrain-every must be 0 or more, got {args.retrain_every}")
    check_address(args.host, args.port)
    if args.charset == "":
        raise CaptchaCrnnError("--charset is empty; leave it out to accept any character")
    root = args.folder
    if not root.is_dir():
        raise CaptchaCrnnError(f"{one_line(root)}: not a folder of images")
    labels = args.labels or _default_labels(root)
    if labels.exists() and not labels.is_file():
        raise CaptchaCrnnError(f"{one_line(labels)}: not a file")
    find_images(root)  # a folder with no images: said before anything is written into it
    model = None if args.model.lower() == "none" else args.model
    recognizer = Recognizer.load(model) if model else None
    store = LabelStore(labels, root).open()
    try:
        bench = Workbench(root, store, recognizer, args.charset, args.order, args.follow_symlinks)
        can_train = importlib.util.find_spec("lightning") is not None
        retrainer = (
            Retrainer(root, labels.parent / ".captcha-crnn-label", lambda path: None) if can_train else None
        )
        app = create_label_app(bench, retrainer, model, args.review, args.retrain_every)
        bench.start()
        counts = bench.counts()
        print(
            f"labelling {counts['total']} images of {root} ({counts['labelled']} labelled) into {labels}; "
            f"open http://{args.host}:{args.port}/",
            file=sys.stderr,
        )
        if bench.broken:
            print(f"warning: {len(bench.broken)} unreadable image(s) skipped", file=sys.stderr)
        try:
            uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        finally:
            if retrainer is not None:
                retrainer.stop()
            bench.stop()
    finally:
        store.close()
    return 0


def _default_labels(root: Path) -> Path:
    """DIR/labels.csv, or the labels.tsv already there (the file `train DIR` would read)."""
    tsv = root / "labels.tsv"
    return tsv if tsv.is_file() and not (root / "labels.csv").exists() else root / "labels.csv"
