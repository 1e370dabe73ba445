"""`captcha-crnn demo`: the whole loop on generated data, with nothing to download or prepare."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.files import check_writable_folder


def run_demo(args: argparse.Namespace) -> int:
    from captcha_crnn.cli.common import check_numbers, print_metrics
    from captcha_crnn.data.labels import collect
    from captcha_crnn.data.synthetic import generate
    from captcha_crnn.inference.evaluate import evaluate
    from captcha_crnn.inference.recognizer import Recognizer
    from captcha_crnn.training.train import TrainOptions, train

    check_numbers(args, at_least_1=("test_count",), positive=("max_time",))
    if args.train_count < 20:  # a tenth of them validates: fewer leave too few to stop on
        raise CaptchaCrnnError(f"--train-count must be at least 20, got {args.train_count}")
    if not 0 <= args.seed < 2**32 - 1:
        raise CaptchaCrnnError(f"--seed must be from 0 to {2**32 - 2}, got {args.seed}")
    out = args.out or Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    check_writable_folder(out)
    if out.exists() and any(out.iterdir()):
        raise CaptchaCrnnError(f"{out}: exists and is not empty; choose another --out")
    train_dir, test_dir = out / "data" / "train", out / "data" / "test"
    print(f"generating {args.train_count} training and {args.test_count} test captchas in {out / 'data'}")
    generate(train_dir, args.train_count, seed=args.seed)
    generate(test_dir, args.test_count, seed=args.seed + 1)  # another seed: images the model never saw

    result = train(
        TrainOptions(
            data=train_dir,
            out=out / "run",
            max_time=args.max_time,
            seed=args.seed,
            progress=not args.no_progress,
        )
    )
    recognizer = Recognizer.load(result.model_path)
    test = evaluate(recognizer, collect(test_dir))
    print()
    print_metrics(
        test.to_dict(), f"fresh test set, after {result.epochs} epochs ({result.seconds:.0f} s of training):"
    )
    for err in test.errors[:10]:
        print(f"  wrong: {Path(str(err['file'])).name}: {err['label']} -> {err['prediction']}")
    print(f"model:         {result.model_path}")
    print(f"training data: {train_dir}")
    print(f"test data:     {test_dir}")
    print(f"metrics:       {result.run_dir / 'metrics.csv'}")
    print(f"curves:        {result.run_dir / 'curves.png'}")
    print(f"try:           captcha-crnn predict {result.model_path} {test_dir}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="generate captchas, train, and evaluate on fresh ones: no data needed",
        description="Generate a training set and a fresh test set of 4-digit captchas, train "
        "the default model until validation loss stops improving (a few minutes on 2 CPU cores) and "
        "evaluate it.",
    )
    p.add_argument("--out", type=Path, metavar="DIR", help="demo folder (default: runs/demo-<timestamp>)")
    p.add_argument("--train-count", type=int, default=6000, help="training images (default: 6000)")
    p.add_argument("--test-count", type=int, default=500, help="fresh test images (default: 500)")
    p.add_argument(
        "--max-time",
        type=float,
        default=10,
        metavar="MINUTES",
        help="a cap on training time; training normally stops earlier, on convergence (default: 10)",
    )
    p.add_argument("--seed", type=int, default=42, help="seed for data and training (default: 42)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.set_defaults(func=run_demo)
