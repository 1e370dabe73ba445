"""`TrainOptions`: every training option and its default, in one place. The CLI builds its `train`
options from these defaults, so a default is never written twice. Torch-free: `--help` imports it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from captcha_crnn.data.synthetic import Style

# Below this many validation images, model.pt keeps the last weights rather than the epoch of lowest
# validation loss: so few images rank epochs by noise (docs/accuracy.md, "Starting from the shipped
# general model").
SMALL_VALIDATION = 100
# The fixed schedule's length in batches of `batch_size` images, however many processes share them (two
# processes take two batches an optimiser step), and the peak LRs. Fine-tuning for 400 batches with a
# cosine read a hard tuning style best at a 3x higher peak than the plateau schedule's (docs/accuracy.md).
FIXED_STEPS = 400
FIXED_LR = 3e-3
PLATEAU_LR = 1e-3
LAZY_ABOVE = 20_000  # images; above this a folder is read lazily (decoded in workers), not held in memory


@dataclass
class TrainOptions:
    data: Path | None  # None: generated data only (`synthetic` > 0)
    out: Path | None = None
    val_split: float = 0.1
    val_dir: Path | None = None
    labels: Path | None = None
    val_labels: Path | None = None
    label_pattern: str | None = None
    recursive: bool = False
    charset: str | None = None
    ignore_case: bool = False  # fold labels to lower case: for sites that draw mixed case but accept any
    # None: the plan picks (plan._capacity): the general reader's size when training starts from it, else
    # DEFAULT_PRESET.
    preset: str | None = None
    # The weights to start from: "general" (the shipped pre-trained model, when the architecture allows),
    # a model file (fine-tuning), or None: a random start. Starting from a model that already reads
    # captchas needs far fewer labels, and skips CTC's all-blank plateau.
    init: Path | str | None = "general"
    rnn: str | None = None  # None: the preset's
    height: int | None = None
    min_width: int | None = None
    max_width: int | None = None
    stretch: float | None = None  # width / aspect-ratio width; None: enough frames per character (images.py)
    # "text": cut each image to its text before resizing (data/textbox.py); "none": never; None: "text"
    # when the text fills a small part of most training images.
    crop: str | None = None
    batch_size: int = 32
    # AdamW's peak LR; None: FIXED_LR for the fixed schedule, PLATEAU_LR for the plateau one.
    lr: float | None = None
    weight_decay: float = 1e-4
    max_epochs: int = 200
    max_time: float | None = None  # minutes
    # How long to train and how the LR falls. "plateau": halve the LR when the validation loss stops
    # falling, and stop when it has not fallen for `patience` steps. "fixed": `steps` batches
    # (rounded up to whole epochs, at most `max_epochs`), the LR falling on a cosine to zero; nothing
    # depends on the validation loss. None: fixed when starting from trained weights (--init) with fewer
    # than SMALL_VALIDATION validation images, whose loss is too noisy to stop on; plateau otherwise (a
    # random start must wait out CTC's blank plateau, of unknown length, and a large validation set tells
    # well when the model is done).
    schedule: Literal["plateau", "fixed"] | None = None
    steps: int = FIXED_STEPS
    # Patience in optimiser steps, not epochs, so it means the same on 500 images as on 50,000: stop after
    # `patience` steps without a 2% better validation loss, halve the LR after `plateau_patience`.
    patience: int = 600
    augment: bool = True
    plateau_patience: int = 200
    min_steps: int = 500  # no LR cuts or early stopping before this, nor before CTC leaves its blank plateau
    warmup_steps: int = 100  # the LR rises linearly to `lr` over these first steps
    ema: bool = True  # validate, select and save an exponential moving average of the weights
    # The weights model.pt keeps: "best" (lowest validation loss), "last", or None: last when the
    # validation set is too small to rank epochs by (SMALL_VALIDATION).
    keep: Literal["best", "last"] | None = None
    channels: int | None = None  # 3 colour, 1 grey; None: colour when the training images have colour
    seed: int = 42
    # Self-training: unlabelled images of the same style get the model's reading as their label where it
    # is at least this confident, for `rounds` rounds, each starting from the last round's model (a second
    # round read 37 more of cryptowin-math's 1,000 test images than one: docs/accuracy.md, session 12).
    unlabelled: Path | None = None
    pseudo_threshold: float = 0.9
    rounds: int = 2
    synthetic: int = 0  # generated captchas streamed per epoch (0: none)
    mix: float = 0.5  # with `data`: the share of generated images in each epoch
    synthetic_style: Style | None = None  # None: the default style, or one matching `data`
    lazy: bool | None = None  # None: lazy above LAZY_ABOVE images
    workers: int | None = None  # DataLoader workers; None: 0 in memory, up to 4 for lazy or generated data
    accelerator: str = "auto"
    # "bf16": convolutions and the recurrent layer in bfloat16 under autocast (the loss and the weights
    # stay float32); "32": float32 throughout; "auto": bf16 on a CPU with bfloat16 units (hardware.py)
    precision: Literal["auto", "32", "bf16"] = "auto"
    devices: int | str | None = None  # None: train.hardware chooses (2 forked processes on a CPU)
    num_nodes: int = 1
    strategy: str = "auto"
    resume: bool = False
    force: bool = False
    progress: bool = True
