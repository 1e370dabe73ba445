"""The `captcha-crnn` command: one module per subcommand (cli/train.py, cli/predict.py, ...), each with
`add(subparsers)` and the function it runs. Heavy modules are imported inside each command, so `predict`
never loads Lightning and `--help` loads neither torch nor Lightning."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from captcha_crnn import __version__
from captcha_crnn.cli import demo, evaluate, export, generate, label, predict, preview, serve, train
from captcha_crnn.cli.common import setup_logging
from captcha_crnn.errors import CaptchaCrnnError

EXTRA_FOR_MODULE = {
    "torch": "train",
    "lightning": "train",
    "captcha": "train",
    "onnx": "train",
    "onnxscript": "train",
    "torchmetrics": "train",
    "matplotlib": "plots",
    "fastapi": "serve",
    "uvicorn": "serve",
    "multipart": "serve",
    "starlette": "serve",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captcha-crnn",
        description="Train, evaluate and use CRNN + CTC text recognizers for captcha-style images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (train, evaluate, predict, export, serve, label, preview, generate, demo):
        command.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.quiet)
    try:
        return int(args.func(args) or 0)
    except CaptchaCrnnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # a command whose extra is not installed
        extra = EXTRA_FOR_MODULE.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"error: 'captcha-crnn {args.command}' needs {exc.name}, from the [{extra}] extra: "
            f"pip install 'captcha-crnn[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except BrokenPipeError:
        sys.stderr.close()  # e.g. `predict ... | head`: the reader left, nothing to report
        return 0
