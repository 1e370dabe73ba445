"""The `captcha-crnn` command. Heavy modules are imported inside each command, so `predict` never loads
Lightning and `--help` loads neither torch nor Lightning."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from captcha_crnn import __version__
from captcha_crnn.errors import CaptchaCrnnError

if TYPE_CHECKING:
    from captcha_crnn.data.synthetic import Style

log = logging.getLogger("captcha_crnn")

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


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return f"warning: {msg}" if record.levelno >= logging.WARNING else msg


def _setup_logging(quiet: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ConsoleFormatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


# ---------------------------------------------------------------- options shared by several commands


def _add_label_options(p: argparse.ArgumentParser) -> None:
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


def _check_numbers(
    args: argparse.Namespace,
    at_least_1: Sequence[str] = (),
    at_least_0: Sequence[str] = (),
    positive: Sequence[str] = (),
) -> None:
    """A one-line error for the first numeric option (by its dest name) out of range; None is unset."""
    for names, fits, wanted in (
        (at_least_1, lambda v: v >= 1, "at least 1"),
        (at_least_0, lambda v: v >= 0, "0 or more"),
        (positive, lambda v: v > 0, "positive"),
    ):
        for name in names:
            value = getattr(args, name)
            if value is not None and not fits(value):
                raise CaptchaCrnnError(f"--{name.replace('_', '-')} must be {wanted}, got {value}")


def _print_metrics(metrics: dict, title: str) -> None:
    rows = [
        ("images", f"{metrics['count']}"),
        ("sequence accuracy", f"{metrics['sequence_accuracy']:.2%}"),
        ("character error rate", f"{metrics['cer']:.2%}"),
        ("character accuracy", f"{metrics['char_accuracy']:.2%}"),
        ("mean CTC loss", f"{metrics['loss']:.4f}"),
    ]
    print(title)
    for name, value in rows:
        print(f"  {name:<22}{value:>10}")


# ---------------------------------------------------------------- train


def _add_train(sub: argparse._SubParsersAction) -> None:
    from captcha_crnn.model.presets import DEFAULT_PRESET, PRESETS

    p = sub.add_parser(
        "train",
        help="train a model on a folder of labelled images",
        description="Train a CRNN + CTC model on a folder of labelled images. The run folder "
        "gets checkpoints/best.ckpt and last.ckpt, metrics.csv, run.json and "
        "model.pt (the model to predict with).",
    )
    p.add_argument(
        "data", type=Path, nargs="?", metavar="DATA", help="folder of training images (or --synthetic N)"
    )
    p.add_argument("--out", type=Path, metavar="DIR", help="run folder (default: runs/<timestamp>)")
    p.add_argument("--force", action="store_true", help="replace an earlier run in --out")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    _add_label_options(p)
    g = p.add_argument_group("validation")
    g.add_argument(
        "--val-split",
        type=float,
        default=0.1,
        metavar="FRACTION",
        help="fraction of DATA held out for validation, chosen with --seed (default: 0.1)",
    )
    g.add_argument("--val-dir", type=Path, metavar="DIR", help="validate on this folder instead of a split")
    g.add_argument("--val-labels", type=Path, metavar="FILE", help="labels file for --val-dir")
    g = p.add_argument_group("model")
    g.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        choices=sorted(PRESETS),
        help="; ".join(f"{k}: {v.description}" for k, v in PRESETS.items()) + f" (default: {DEFAULT_PRESET})",
    )
    g.add_argument("--rnn", choices=["lstm", "gru"], help="recurrent layer (default: the preset's)")
    g.add_argument(
        "--init",
        type=Path,
        metavar="MODEL",
        help="start from this model's weights (same preset; e.g. one trained with --synthetic) instead of "
        "a random initialisation; characters both charsets share keep their output weights",
    )
    g.add_argument("--charset", help="characters to learn (default: those in the training labels)")
    g.add_argument("--height", type=int, help="input height, a multiple of 16 (default: 32)")
    g.add_argument(
        "--channels",
        type=int,
        choices=[1, 3],
        help="input channels: 3 colour, 1 grey (default: 3 when the training images have colour)",
    )
    g.add_argument("--min-width", type=int, help="narrowest input width (default: from the data)")
    g.add_argument("--max-width", type=int, help="widest input width (default: from the data)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, default=32, help="images per step (default: 32)")
    g.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay (default: 1e-4)")
    g.add_argument("--max-epochs", type=int, default=200, help="upper bound on epochs (default: 200)")
    g.add_argument("--max-time", type=float, metavar="MINUTES", help="stop after this many minutes")
    g.add_argument(
        "--patience",
        type=int,
        default=600,
        metavar="STEPS",
        help="stop after this many optimiser steps without a 2%% lower validation loss (default: 600)",
    )
    g.add_argument(
        "--no-augment",
        action="store_true",
        help="train on the images as they are (default: random small affine jitter, contrast, noise)",
    )
    g.add_argument("--seed", type=int, default=42, help="seed for the split, initialisation and shuffling")
    g = p.add_argument_group(
        "generated data",
        "Stream captchas drawn by the captcha library, never written to disk. Alone they are the "
        "training set (validated on a fixed generated set); with DATA they are mixed into each epoch and "
        "look like DATA unless the style options below say otherwise.",
    )
    g.add_argument("--synthetic", type=int, default=0, metavar="N", help="generated captchas per epoch")
    g.add_argument(
        "--mix",
        type=float,
        default=0.5,
        metavar="R",
        help="with DATA: share of generated images in each epoch (default: 0.5)",
    )
    g.add_argument("--length", help="generated label length, e.g. 4 or 4-8 (default: 4, or like DATA)")
    g.add_argument(
        "--size", metavar="WxH", help="generated size, e.g. 160x60 or 200-550x80 (default: 160x60)"
    )
    g.add_argument("--transparent", action="store_true", help="generated: colour text on transparent")
    g.add_argument("--noise-lines", metavar="N", help="generated: extra lines per image, e.g. 2-5")
    g = p.add_argument_group("data loading")
    g.add_argument(
        "--lazy",
        action="store_true",
        default=None,
        help="decode images in DataLoader workers instead of holding them in memory "
        "(default: only above 20000 images)",
    )
    g.add_argument(
        "--workers", type=int, metavar="N", help="DataLoader worker processes (default: automatic)"
    )
    g = p.add_argument_group(
        "hardware", "Multi-process runs use Lightning's DDP; see README 'Distributed training'."
    )
    g.add_argument("--accelerator", default="auto", help="cpu, gpu, mps or auto (default: auto)")
    g.add_argument("--devices", default="1", help="devices (processes) per node, or auto (default: 1)")
    g.add_argument("--num-nodes", type=int, default=1, metavar="M", help="machines (default: 1)")
    g.add_argument(
        "--strategy", default="auto", help="Lightning strategy (default: ddp for several processes)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.set_defaults(func=_cmd_train)


def _train_style(args: argparse.Namespace) -> Style | None:
    """The generated style when any style option is given; None lets `train` choose (like DATA)."""
    if not any((args.length, args.size, args.transparent, args.noise_lines)):
        return None
    if not args.synthetic:
        raise CaptchaCrnnError("--length, --size, --transparent and --noise-lines need --synthetic N")
    defaults = {"length": "4", "size": "160x60", "noise_lines": "0", "charset": "0123456789"}
    filled = argparse.Namespace(**{**vars(args), **{k: getattr(args, k) or v for k, v in defaults.items()}})
    return _style(filled)


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def _devices(args: argparse.Namespace) -> int | str:
    """--accelerator, --devices and --strategy checked before any data is read: Lightning
    would only refuse them after the data is loaded, with a traceback. Returns --devices for Lightning."""
    import torch
    from lightning.pytorch.strategies import StrategyRegistry

    if args.accelerator not in ACCELERATORS:
        raise CaptchaCrnnError(
            f"--accelerator must be one of {', '.join(ACCELERATORS)}, got {args.accelerator!r}"
        )
    if args.devices != "auto" and not (args.devices.isdigit() and int(args.devices) > 0):
        raise CaptchaCrnnError(f"--devices must be a positive number or auto, got {args.devices!r}")
    if args.strategy != "auto" and args.strategy not in StrategyRegistry:
        raise CaptchaCrnnError(
            f"--strategy {args.strategy!r} is not a Lightning strategy; try auto, ddp or ddp_spawn"
        )
    devices = "auto" if args.devices == "auto" else int(args.devices)
    if args.accelerator in ("gpu", "cuda"):
        found = torch.cuda.device_count()
        if not found:
            raise CaptchaCrnnError(
                f"--accelerator {args.accelerator}: no CUDA GPU here (torch {torch.__version__}); "
                "use --accelerator cpu or auto"
            )
        if isinstance(devices, int) and devices > found:
            raise CaptchaCrnnError(f"--devices {devices}: only {found} CUDA GPU(s) here")
    if args.accelerator == "mps" and not torch.backends.mps.is_available():
        raise CaptchaCrnnError("--accelerator mps: no Apple GPU (MPS) here; use --accelerator cpu or auto")
    return devices


def _cmd_train(args: argparse.Namespace) -> int:
    from captcha_crnn.training.train import TrainOptions, train

    if args.val_labels and not args.val_dir:
        raise CaptchaCrnnError("--val-labels needs --val-dir")
    _check_numbers(
        args,
        at_least_1=("batch_size", "max_epochs", "num_nodes"),
        at_least_0=("weight_decay", "workers", "synthetic"),
        positive=("lr", "max_time"),
    )
    devices = _devices(args)
    opts = TrainOptions(
        data=args.data,
        out=args.out,
        val_split=args.val_split,
        val_dir=args.val_dir,
        labels=args.labels,
        val_labels=args.val_labels,
        label_pattern=args.label_pattern,
        recursive=args.recursive,
        charset=args.charset,
        preset=args.preset,
        init=args.init,
        rnn=args.rnn,
        height=args.height,
        channels=args.channels,
        min_width=args.min_width,
        max_width=args.max_width,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        max_epochs=args.max_epochs,
        max_time=args.max_time,
        patience=args.patience,
        seed=args.seed,
        synthetic=args.synthetic,
        mix=args.mix,
        synthetic_style=_train_style(args),
        lazy=args.lazy,
        workers=args.workers,
        accelerator=args.accelerator,
        devices=devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        augment=not args.no_augment,
        resume=args.resume,
        force=args.force,
        progress=not args.no_progress,
    )
    result = train(opts)
    if not result.val_metrics:  # a distributed run's other processes: rank 0 reports
        return 0
    _print_metrics(result.val_metrics, f"validation after {result.epochs} epochs ({result.seconds:.0f} s):")
    print(f"model:       {result.model_path}")
    print(f"checkpoints: {result.best_checkpoint.parent}")
    print(f"metrics:     {result.run_dir / 'metrics.csv'}")
    print(f"curves:      {result.run_dir / 'curves.png'}")
    return 0


# ---------------------------------------------------------------- evaluate


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a model on labelled images",
        description="Print count, sequence accuracy, character error rate, character accuracy "
        "and mean CTC loss, then each wrong image as 'file: truth -> prediction'.",
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="model.pt (or a run's .ckpt)")
    p.add_argument("data", type=Path, metavar="DATA", help="folder of labelled images")
    _add_label_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write a report into DIR: prediction grid (wrong images first), most confused "
        "characters, per-character accuracy, and a self-contained report.html",
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from captcha_crnn.data.labels import collect
    from captcha_crnn.inference.evaluate import evaluate
    from captcha_crnn.inference.recognizer import Recognizer

    _check_numbers(args, at_least_1=("batch_size",))
    if args.report:
        from captcha_crnn.reporting.report import prepare_report_dir

        prepare_report_dir(args.report)  # fail before the work, not after
    recognizer = Recognizer.load(args.model, batch_size=args.batch_size)
    items = collect(args.data, args.labels, args.label_pattern, args.recursive)
    result = evaluate(recognizer, items, progress=True)
    if args.report:
        from captcha_crnn.reporting.report import write_report

        page = write_report(result, args.report, str(args.model), str(args.data))
        print(f"report: {page}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    _print_metrics(result.to_dict(), f"{args.model} on {args.data}:")
    if result.errors:
        print(f"wrong ({len(result.errors)}):")
        for err in result.errors:
            print(f"  {err['file']}: {err['label']} -> {err['prediction']}")
    return 0


# ---------------------------------------------------------------- predict


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="read the text in images",
        description="Print 'path<TAB>text<TAB>confidence' for each image (files, or every "
        "image in the folders given).",
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="model.pt (or a run's .ckpt)")
    p.add_argument("paths", type=Path, nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("--recursive", action="store_true", help="also look for images in subfolders")
    p.add_argument("--json", action="store_true", help='JSON lines: {"file", "text", "confidence"}')
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from captcha_crnn.data.labels import find_images
    from captcha_crnn.inference.evaluate import progress_bar
    from captcha_crnn.inference.recognizer import Recognizer

    _check_numbers(args, at_least_1=("batch_size",))
    recognizer = Recognizer.load(args.model, batch_size=args.batch_size)
    for path in args.paths:  # a file named directly must exist and be readable: checked before any output
        if not path.is_dir():
            recognizer.preprocess(path)
    files = [
        found
        for path in args.paths
        for found in (find_images(path, args.recursive) if path.is_dir() else [path])
    ]
    skipped = []
    # Streamed: a chunk is decoded (in threads), read and printed before the next, so a folder of any
    # size prints from the start and memory stays flat.
    bar = not sys.stdout.isatty()  # a bar beside lines printed to the same terminal would garble both
    for path, log_probs in progress_bar(recognizer.stream(files), len(files), "reading", bar):
        if isinstance(log_probs, Exception):
            skipped.append(str(log_probs))
            continue
        text, confidence = recognizer.tokenizer.greedy_decode(log_probs)
        if args.json:
            print(json.dumps({"file": str(path), "text": text, "confidence": round(confidence, 6)}))
        else:
            print(f"{path}\t{text}\t{confidence:.4f}")
    if skipped:
        log.warning("skipped %d unreadable file(s), e.g. %s", len(skipped), skipped[0])
    return 0


# ---------------------------------------------------------------- export


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write one self-contained ONNX file for torch-free inference",
        description="Export MODEL to ONNX: dynamic batch and width, with the charset, input "
        "size policy, normalisation and version in the file's metadata. The file "
        "is checked (onnx checker, same predictions as PyTorch) before it is "
        "written. predict, evaluate and serve take the .onnx file as MODEL.",
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="model.pt (or a run's .ckpt)")
    p.add_argument("out", type=Path, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument(
        "--quantize",
        action="store_true",
        help="int8 weights (onnxruntime dynamic quantization): smaller; check its accuracy with evaluate",
    )
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from captcha_crnn.export.onnx import export

    report = export(args.model, args.out, quantize=args.quantize, force=args.force)
    print(
        f"wrote {report.path} ({report.bytes / 1e6:.2f} MB); checked against PyTorch on {report.checked} images: "
        f"{report.same_text}/{report.checked} same text, max log-prob difference {report.max_abs_diff:.2e}"
    )
    return 0


# ---------------------------------------------------------------- serve


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP, with a web page",
        description="Serve MODEL over HTTP: POST /v1/recognize (one image, multipart or raw "
        "body), POST /v1/recognize/batch, GET /v1/model, GET /healthz, OpenAPI "
        "docs at /docs and a web page at /.",
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="model.pt (or a run's .ckpt)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes, each with its own model (default: 1)"
    )
    p.add_argument("--max-body-mb", type=float, default=2.0, help="largest request body in MB (default: 2)")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=4096 * 4096,
        help="largest image in pixels, a decompression-bomb guard (default: 16777216)",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=512,
        help="images waiting for the model, per worker; more get 503 with Retry-After (default: 512)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a request not answered in this time gets 504 (default: 30)",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="inference threads per worker (default: CPU cores / workers, at least 1)",
    )
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from captcha_crnn.inference.recognizer import Recognizer
    from captcha_crnn.serving.threads import threads_per_worker

    Recognizer.load(args.model)  # a bad MODEL is one clear line here, not a traceback in each worker
    threads = threads_per_worker(args.workers) if args.threads is None else args.threads
    counts = {"--workers": args.workers, "--max-queue": args.max_queue, "--threads": threads}
    for option, value in counts.items():
        if value < 1:
            raise CaptchaCrnnError(f"{option} must be at least 1, got {value}")
    if args.request_timeout <= 0:
        raise CaptchaCrnnError(f"--request-timeout must be positive, got {args.request_timeout}")
    os.environ["CAPTCHA_CRNN_MODEL"] = str(args.model)
    os.environ["CAPTCHA_CRNN_MAX_BODY"] = str(int(args.max_body_mb * 1024 * 1024))
    os.environ["CAPTCHA_CRNN_MAX_PIXELS"] = str(args.max_pixels)
    os.environ["CAPTCHA_CRNN_MAX_QUEUE"] = str(args.max_queue)
    os.environ["CAPTCHA_CRNN_REQUEST_TIMEOUT"] = str(args.request_timeout)
    os.environ["CAPTCHA_CRNN_THREADS"] = str(threads)
    print(
        f"serving {args.model} on http://{args.host}:{args.port}/ with {args.workers} worker(s) x "
        f"{threads} inference thread(s) (docs at /docs)",
        file=sys.stderr,
    )
    uvicorn.run(
        "captcha_crnn.serving.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )
    return 0


# ---------------------------------------------------------------- preview


def _add_preview(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preview",
        help="a picture of a data set's images and labels, with statistics",
        description="Draw a grid of sample images with their labels and print the number of "
        "images, their sizes, label lengths, character frequencies and unreadable "
        "files.",
    )
    p.add_argument("data", type=Path, metavar="DATA", help="folder of labelled images")
    _add_label_options(p)
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
    p.set_defaults(func=_cmd_preview)


def _cmd_preview(args: argparse.Namespace) -> int:
    from captcha_crnn.data.labels import collect

    if args.out.exists() and not args.force:
        raise CaptchaCrnnError(f"{args.out}: already exists; pass --force to replace it or another --out")
    if args.count < 1:
        raise CaptchaCrnnError(f"--count must be at least 1, got {args.count}")
    items = collect(args.data, args.labels, args.label_pattern, args.recursive)
    from captcha_crnn.reporting.preview import preview

    summary = preview(items, args.out, args.count, args.seed)
    print("\n".join(summary.lines()))
    print(f"grid:          {args.out}")
    return 0


# ---------------------------------------------------------------- generate


def _add_generate(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--charset", default="0123456789", help="characters to draw from (default: digits)")
    p.add_argument("--length", default="4", help="label length, e.g. 4 or 4-6 (default: 4)")
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
    p.set_defaults(func=_cmd_generate)


def _style(args: argparse.Namespace) -> Style:
    from captcha_crnn.data.synthetic import Style, parse_length, parse_range, parse_size

    width, height = parse_size(args.size)
    return Style(
        charset=args.charset,
        length=parse_length(args.length),
        width=width,
        height=height,
        transparent=args.transparent,
        noise_lines=parse_range(args.noise_lines, "--noise-lines"),
    )


def _cmd_generate(args: argparse.Namespace) -> int:
    from captcha_crnn.data.synthetic import generate

    labels = generate(args.out, args.count, _style(args), args.seed, force=args.force)
    print(f"wrote {args.count} images and {labels}")
    return 0


# ---------------------------------------------------------------- demo


def _add_demo(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from captcha_crnn.cli.demo import run_demo

    return run_demo(args)


# ---------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="captcha-crnn",
        description="Train, evaluate and use CRNN + CTC text recognizers for captcha-style images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_train,
        _add_evaluate,
        _add_predict,
        _add_export,
        _add_serve,
        _add_preview,
        _add_generate,
        _add_demo,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.quiet)
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
