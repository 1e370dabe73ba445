"""What several commands share: console logging, label, reading and generated-style options, number
checks, the metrics table."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from captcha_crnn.errors import CaptchaCrnnError, one_line

log = logging.getLogger("captcha_crnn")


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return f"warning: {msg}" if record.levelno >= logging.WARNING else msg


def setup_logging(quiet: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ConsoleFormatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def add_label_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("labels")
    g.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="CSV/TSV of 'relative path,label' rows (default: DATA/labels.csv or labels.tsv if "
        "present, else each file's name without extension)",
    )
    g.add_argument(
        "--label-pattern",
        metavar="REGEX",
        help="take the label from the first match of REGEX in the file stem (group 1 if the "
        r"pattern has a group), e.g. '^[^-_]+' for ab12-0.png or '^([^_]+)_' for ab12_5f3e.png",
    )
    g.add_argument("--recursive", action="store_true", help="also look for images in subfolders")


STYLE_DEFAULTS = {"kind": "text", "length": "4", "size": "160x60", "noise_lines": "0"}


def add_style_options(g: argparse._ActionsContainer, in_train: bool) -> None:
    """The generated style's options, for `generate` and `train --synthetic`. In train they default to
    None, so that a style is built only when one is given (else train draws captchas like DATA)."""
    default = (lambda name: None) if in_train else STYLE_DEFAULTS.get
    like_data = ", or like DATA" if in_train else ""
    g.add_argument(
        "--kind",
        choices=("text", "arithmetic"),
        default=default("kind"),
        help="text: random strings of --charset; arithmetic: expressions such as 12×4= or 3+8=? (operands "
        "0-99, + - x * × ÷ /, optional = and ?), labelled as drawn (default: text)",
    )
    g.add_argument(
        "--length",  # no default here: given, it is refused for --kind arithmetic
        help=f"label length, e.g. 4 or 4-6 (default: 4{like_data}; not with --kind arithmetic)",
    )
    g.add_argument(
        "--size",
        default=default("size"),
        metavar="WxH",
        help="image size; a width range such as 200-550x80 draws each image's width (default: 160x60)",
    )
    g.add_argument(
        "--transparent", action="store_true", help="colour text on a transparent background (RGBA)"
    )
    g.add_argument(
        "--noise-lines",
        default=default("noise_lines"),
        metavar="N",
        help="extra lines per image, e.g. 2-5 (default: 0)",
    )


def style_from_options(
    args: argparse.Namespace, charset: str | None
):  # -> Style (imported here: light --help)
    """The generated style of the options add_style_options adds, those not given at their defaults;
    `charset` is what to draw from (None: digits)."""
    from captcha_crnn.data.synthetic import DIGITS, Style, parse_length, parse_range, parse_size

    kind = args.kind or STYLE_DEFAULTS["kind"]
    if kind == "arithmetic":
        given = [option for option, value in (("--charset", charset), ("--length", args.length)) if value]
        if given:
            raise CaptchaCrnnError(
                f"{' and '.join(given)}: not for --kind arithmetic, whose expressions have their own "
                "characters and lengths"
            )
    if charset == "":
        raise CaptchaCrnnError("--charset is empty; leave it out for digits")
    width, height = parse_size(args.size or STYLE_DEFAULTS["size"])
    return Style(
        charset=charset or DIGITS,
        length=parse_length(args.length or STYLE_DEFAULTS["length"]),
        width=width,
        height=height,
        transparent=args.transparent,
        noise_lines=parse_range(args.noise_lines or STYLE_DEFAULTS["noise_lines"], "--noise-lines"),
        kind=kind,
    )


def add_model_argument(p: argparse.ArgumentParser) -> None:
    """MODEL, as predict and evaluate take it."""
    p.add_argument(
        "model",
        type=Path,
        metavar="MODEL",
        help="model.pt, a run's .ckpt, an exported .onnx, or 'general' (the shipped pre-trained model)",
    )


def add_reading_options(p: argparse.ArgumentParser, solve_help: str) -> None:
    """--charset, --length and --solve (what a reading may hold, and what is made of it), and
    --batch-size: predict's and evaluate's, worded once. `solve_help` says what solving adds there."""
    from captcha_crnn.arithmetic import SOLVERS

    p.add_argument(
        "--charset",
        metavar="CHARS",
        help="read only these characters (e.g. 0123456789): the other classes' scores are masked before "
        "decoding; with one case only, the model's other case counts for it",
    )
    p.add_argument(
        "--length",
        metavar="N|N-M|any",
        help="how many characters a reading has: a best reading of another length gives way to the best "
        "one of this length (default: the lengths of the model's training labels; 'any' for no limit)",
    )
    p.add_argument("--solve", choices=SOLVERS, help=solve_help)
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")


def load_recognizer(args: argparse.Namespace) -> tuple:  # (Recognizer, Reading): imported here, light --help
    """args.model loaded, and how to read with it (args.charset, args.length, args.solve), checked
    against it before any work: a character the model cannot read is one line, now."""
    from captcha_crnn.inference.recognizer import Recognizer

    recognizer = Recognizer.load(args.model, batch_size=args.batch_size)
    return recognizer, recognizer.reading(args.charset, args.length, args.solve)


def check_numbers(
    args: argparse.Namespace,
    at_least_1: Sequence[str] = (),
    at_least_0: Sequence[str] = (),
    positive: Sequence[str] = (),
) -> None:
    """A one-line error for the first numeric option (by its dest name) out of range or not finite (argparse
    reads `inf` and `nan` as floats); None is unset."""
    for names, fits, wanted in (
        (at_least_1, lambda v: v >= 1, "at least 1"),
        (at_least_0, lambda v: v >= 0, "0 or more"),
        (positive, lambda v: v > 0, "positive"),
    ):
        for name in names:
            value = getattr(args, name)
            if value is None:
                continue
            option = f"--{name.replace('_', '-')}"
            if isinstance(value, float) and not math.isfinite(value):  # an int of any size is finite
                raise CaptchaCrnnError(f"{option} must be a finite number, got {value}")
            if not fits(value):
                raise CaptchaCrnnError(f"{option} must be {wanted}, got {value}")


def print_metrics(metrics: dict, title: str) -> None:
    rows = [
        ("images", f"{metrics['count']}"),
        ("sequence accuracy", f"{metrics['sequence_accuracy']:.2%}"),
        ("character error rate", f"{metrics['cer']:.2%}"),
        ("character accuracy", f"{metrics['char_accuracy']:.2%}"),
        ("mean CTC loss", f"{metrics['loss']:.4f}"),
    ]
    if metrics.get("answer_accuracy") is not None:  # evaluate --solve
        rows.insert(2, ("answer accuracy", f"{metrics['answer_accuracy']:.2%}"))
    print(title)
    for name, value in rows:
        print(f"  {name:<22}{value:>10}")


def check_address(host: str, port: int) -> None:
    """A one-line error, before any banner or model load, for a port out of range or an address that
    cannot be listened on (in use, no such host); uvicorn would print its own error and exit 3."""
    import socket

    if not 0 <= port <= 65535:
        raise CaptchaCrnnError(f"--port must be from 0 to 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:
        raise CaptchaCrnnError(
            f"--host {host} --port {port}: cannot listen ({one_line(exc.strerror or exc)})"
        ) from None
