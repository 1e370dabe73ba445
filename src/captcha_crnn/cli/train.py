"""`captcha-crnn train`: a folder of labelled images (or generated ones) in, a run folder out."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from captcha_crnn.cli.common import (
    add_label_options,
    add_style_options,
    check_numbers,
    print_metrics,
    style_from_options,
)
from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.options import FIXED_LR, LAZY_ABOVE, PLATEAU_LR, SMALL_VALIDATION, TrainOptions

if TYPE_CHECKING:
    from captcha_crnn.data.synthetic import Style


# Every default comes from TrainOptions: written once, shown in --help from there.
D = TrainOptions(data=None)


def add(sub: argparse._SubParsersAction) -> None:
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
    add_label_options(p)
    g = p.add_argument_group("validation")
    g.add_argument(
        "--val-split",
        type=float,
        default=D.val_split,
        metavar="FRACTION",
        help=f"fraction of DATA held out for validation, chosen with --seed (default: {D.val_split})",
    )
    g.add_argument("--val-dir", type=Path, metavar="DIR", help="validate on this folder instead of a split")
    g.add_argument("--val-labels", type=Path, metavar="FILE", help="labels file for --val-dir")
    g = p.add_argument_group("model")
    g.add_argument(
        "--preset",
        default=D.preset,
        choices=sorted(PRESETS),
        help="; ".join(f"{k}: {v.description}" for k, v in PRESETS.items())
        + f" (default: from the general model, the general reader's size, from its weights; else {DEFAULT_PRESET})",
    )
    g.add_argument("--rnn", choices=["lstm", "gru"], help="recurrent layer (default: the preset's)")
    g.add_argument(
        "--init",
        default=D.init,
        metavar="MODEL",
        help="start from this model's weights: 'general' (the shipped pre-trained model, used when the "
        "preset allows; another input height is resized to), a model file (the network takes its size), or 'none' for a random start; "
        f"characters both charsets share keep their output weights (default: {D.init})",
    )
    g.add_argument("--charset", help="characters to learn (default: those in the training labels)")
    g.add_argument(
        "--ignore-case",
        action="store_true",
        help="fold labels to lower case (for sites that draw mixed case but accept any); the model reads "
        "lower case and records it",
    )
    g.add_argument(
        "--height",
        type=int,
        help="input height, a multiple of 16 (default: the height of what the network reads, the image or "
        "its text once cut, in the median training image, rounded down to a multiple of 16, from 32 to 48)",
    )
    g.add_argument(
        "--channels",
        type=int,
        choices=[1, 3],
        help="input channels: 3 colour, 1 grey (default: 3 when the training images have colour)",
    )
    g.add_argument("--min-width", type=int, help="narrowest input width (default: from the data)")
    g.add_argument("--max-width", type=int, help="widest input width (default: from the data)")
    g.add_argument(
        "--stretch",
        type=float,
        help="widen images by this factor beyond their aspect ratio, 1 to keep it (default: enough for "
        "the output frames a label's characters need; run.json says why)",
    )
    g.add_argument(
        "--crop",
        choices=["text", "none"],
        help="'text': cut each image to its text before resizing, where the text fills a small part of it "
        "(default: 'text' when it does in most training images; run.json says why)",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--batch-size", type=int, default=D.batch_size, help=f"images per step (default: {D.batch_size})"
    )
    g.add_argument(
        "--lr",
        type=float,
        help=f"AdamW peak learning rate (default: {FIXED_LR:g} for the fixed schedule, {PLATEAU_LR:g} for "
        "the plateau one)",
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        default=D.weight_decay,
        help=f"AdamW weight decay (default: {D.weight_decay:g})",
    )
    g.add_argument(
        "--max-epochs",
        type=int,
        default=D.max_epochs,
        help=f"upper bound on epochs (default: {D.max_epochs})",
    )
    g.add_argument("--max-time", type=float, metavar="MINUTES", help="stop after this many minutes")
    g.add_argument(
        "--schedule",
        choices=["plateau", "fixed"],
        help="plateau: halve the LR and stop when the validation loss stops falling; fixed: --steps "
        "batches, the LR falling on a cosine (default: fixed when fine-tuning with fewer than "
        f"{SMALL_VALIDATION} validation images, too few to stop on; else plateau)",
    )
    g.add_argument(
        "--steps",
        type=int,
        default=D.steps,
        help=f"the fixed schedule's length in batches of --batch-size images (N processes take N a step), "
        f"rounded up to whole epochs and at most --max-epochs epochs (default: {D.steps})",
    )
    g.add_argument(
        "--patience",
        type=int,
        default=D.patience,
        metavar="STEPS",
        help="plateau schedule: stop after this many optimiser steps without a 2%% lower validation loss "
        f"(default: {D.patience})",
    )
    g.add_argument(
        "--keep",
        choices=["best", "last"],
        help="the weights model.pt keeps: the epoch of lowest validation loss, or the last one "
        f"(default: last when fewer than {SMALL_VALIDATION} images validate, too few to rank epochs by)",
    )
    g.add_argument(
        "--no-augment",
        action="store_true",
        help="train on the images as they are (default: random small affine jitter, contrast, noise)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=D.seed,
        help=f"seed for the split, initialisation and shuffling (default: {D.seed})",
    )
    g = p.add_argument_group(
        "generated data",
        "Stream captchas drawn by the captcha library, never written to disk. Alone they are the "
        "training set (validated on a fixed generated set); with DATA they are mixed into each epoch and "
        "look like DATA unless the style options below say otherwise.",
    )
    g.add_argument(
        "--synthetic", type=int, default=D.synthetic, metavar="N", help="generated captchas per epoch"
    )
    g.add_argument(
        "--mix",
        type=float,
        default=D.mix,
        metavar="R",
        help=f"with DATA: share of generated images in each epoch (default: {D.mix})",
    )
    add_style_options(g, in_train=True)
    g = p.add_argument_group(
        "unlabelled images (self-training)",
        "Label the unlabelled images with the model's confident readings and train again from that model; "
        "validation stays on labelled images.",
    )
    g.add_argument(
        "--unlabelled", type=Path, metavar="DIR", help="folder of unlabelled images of the same style"
    )
    g.add_argument(
        "--pseudo-threshold",
        type=float,
        default=D.pseudo_threshold,
        metavar="P",
        help=f"keep readings at least this confident, 0..1 (default: {D.pseudo_threshold})",
    )
    g.add_argument(
        "--rounds",
        type=int,
        default=D.rounds,
        help=f"self-training rounds after the first (default: {D.rounds})",
    )
    g = p.add_argument_group("data loading")
    g.add_argument(
        "--lazy",
        action="store_true",
        default=None,
        help="decode images in DataLoader workers instead of holding them in memory "
        f"(default: only above {LAZY_ABOVE} images)",
    )
    g.add_argument(
        "--workers", type=int, metavar="N", help="DataLoader worker processes (default: automatic)"
    )
    g = p.add_argument_group(
        "hardware",
        "Multi-process runs use Lightning's DDP; see docs/deployment.md, 'Large data, generated data, several "
        "machines'.",
    )
    g.add_argument(
        "--accelerator",
        default=D.accelerator,
        help=f"{', '.join(ACCELERATORS)}; auto: a GPU when there is one (default: {D.accelerator})",
    )
    g.add_argument(
        "--precision",
        choices=["auto", "32", "bf16"],
        default=D.precision,
        help="32: float32; bf16: bfloat16 autocast, faster on CPUs and GPUs with bfloat16 units "
        f"(default: {D.precision}: bf16 on a CPU that has them)",
    )
    g.add_argument(
        "--devices",
        help="devices (processes) per node, or auto (default: 2 processes on a CPU of 2+ cores, else 1)",
    )
    g.add_argument(
        "--num-nodes", type=int, default=D.num_nodes, metavar="M", help=f"machines (default: {D.num_nodes})"
    )
    g.add_argument(
        "--strategy", default=D.strategy, help="Lightning strategy (default: ddp for several processes)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.set_defaults(func=run)


def _train_style(args: argparse.Namespace) -> Style | None:
    """The generated style when any style option is given; None lets `train` choose (like DATA). Its
    characters are --charset's (digits without it), except for arithmetic, whose expressions bring theirs."""
    if not any((args.kind, args.length, args.size, args.transparent, args.noise_lines)):
        return None
    if not args.synthetic:
        raise CaptchaCrnnError("--kind, --length, --size, --transparent and --noise-lines need --synthetic N")
    return style_from_options(args, None if args.kind == "arithmetic" else args.charset or None)


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def _devices(args: argparse.Namespace) -> int | str | None:
    """--accelerator, --devices and --strategy checked before any data is read: Lightning
    would only refuse them after the data is loaded, with a traceback. Returns --devices for Lightning."""
    import torch
    from lightning.pytorch.strategies import StrategyRegistry

    if args.accelerator not in ACCELERATORS:
        raise CaptchaCrnnError(
            f"--accelerator must be one of {', '.join(ACCELERATORS)}, got {args.accelerator!r}"
        )
    if (
        args.devices is not None
        and args.devices != "auto"
        and not (args.devices.isdigit() and int(args.devices) > 0)
    ):
        raise CaptchaCrnnError(f"--devices must be a positive number or auto, got {args.devices!r}")
    if args.strategy != "auto" and args.strategy not in StrategyRegistry:
        raise CaptchaCrnnError(
            f"--strategy {args.strategy!r} is not a Lightning strategy; try auto, ddp or ddp_spawn"
        )
    devices = args.devices if args.devices in (None, "auto") else int(args.devices)
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


def run(args: argparse.Namespace) -> int:
    from captcha_crnn.training.self_training import self_train
    from captcha_crnn.training.train import train

    if args.val_labels and not args.val_dir:
        raise CaptchaCrnnError("--val-labels needs --val-dir")
    check_numbers(
        args,
        at_least_1=("batch_size", "max_epochs", "num_nodes", "patience", "rounds", "steps"),
        at_least_0=("weight_decay", "workers", "synthetic"),
        positive=("lr", "max_time"),
    )
    devices = _devices(args)
    given = {f.name: getattr(args, f.name) for f in fields(TrainOptions) if f.name in vars(args)}
    opts = TrainOptions(
        **{
            **given,
            "devices": devices,
            "synthetic_style": _train_style(args),
            "augment": not args.no_augment,
            "progress": not args.no_progress,
            "init": None if args.init.lower() == "none" else args.init,
        }
    )
    result = self_train(opts) if opts.unlabelled is not None else train(opts)
    if not result.val_metrics:  # a distributed run's other processes: rank 0 reports
        return 0
    print_metrics(result.val_metrics, f"validation after {result.epochs} epochs ({result.seconds:.0f} s):")
    print(f"model:       {result.model_path}")
    print(f"checkpoints: {result.checkpoint.parent}")
    print(f"metrics:     {result.run_dir / 'metrics.csv'}")
    print(f"curves:      {result.run_dir / 'curves.png'}")
    return 0
