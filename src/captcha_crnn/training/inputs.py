"""What a run trains and validates on: the labelled images (read, split and scanned, or lazily only their
sizes), the generated style and its fixed validation set; then, once the plan has fixed the charset and
input size, the datasets the data module serves."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from captcha_crnn.data.images import InputPolicy
from captcha_crnn.data.labels import LabelledImage, collect, split_validation
from captcha_crnn.data.synthetic import DIGITS, Renderer, Style
from captcha_crnn.data.tokenizer import CTCTokenizer
from captcha_crnn.errors import LabelError
from captcha_crnn.options import LAZY_ABOVE, TrainOptions


@dataclass
class Inputs:
    train_images: list  # ScannedImage
    val_images: list  # ScannedImage; generated ones (val_generated) exist only in memory
    style: Style | None  # the generated captchas streamed in training (--synthetic), or None
    val_generated: bool = False


def read_inputs(opts: TrainOptions, extra: Sequence[LabelledImage] = ()) -> Inputs:
    """Labelled images (scanned), the generated style and, for generated data only, a fixed generated
    validation set. `extra` labelled images join the training images only (self-training's pseudo-labels)."""
    from captcha_crnn.training.datamodule import scan

    train_images: list = []
    val_images: list = []
    if opts.data is not None:
        items = collect(Path(opts.data), opts.labels, opts.label_pattern, opts.recursive)
        if opts.ignore_case:
            items = folded(items)
        if opts.val_dir:
            train_items = items
            val_items = collect(Path(opts.val_dir), opts.val_labels, opts.label_pattern, opts.recursive)
            val_items = folded(val_items) if opts.ignore_case else val_items
        else:
            train_items, val_items = split_validation(items, opts.val_split, opts.seed)
        train_items = [*train_items, *extra]
        lazy = opts.lazy if opts.lazy is not None else len(items) + len(extra) > LAZY_ABOVE
        train_images = scan(train_items, "training", lazy)
        val_images = scan(val_items, "validation", lazy)
    style = _style(opts, train_images)
    if opts.data is None and style is not None:  # a fixed generated validation set, held in memory
        count = max(200, min(2000, opts.synthetic // 10))
        return Inputs(train_images, _generated_validation(style, opts.seed, count), style, True)
    return Inputs(train_images, val_images, style)


def _style(opts: TrainOptions, train_images: list) -> Style | None:
    """The generated captchas' style: --synthetic's, else one like DATA (its characters, lengths, sizes)."""
    if not opts.synthetic:
        return None
    style = opts.synthetic_style or (
        _style_like(train_images, opts.charset) if train_images else Style(charset=opts.charset or DIGITS)
    )
    if opts.synthetic_style and train_images and not opts.charset:  # draw DATA's characters
        style = replace(style, charset=_style_like(train_images, None).charset)
    if opts.ignore_case:
        style = replace(style, charset=fold(style.charset))
    return style


@dataclass
class Sets:
    train: Any  # ImageSet, or SyntheticStream for generated data
    val: Any  # ImageSet
    lazy: bool
    workers: int


def build_sets(opts: TrainOptions, inputs: Inputs, tokenizer: CTCTokenizer, policy: InputPolicy) -> Sets:
    """Check every label against the planned charset and input size, then build the training and
    validation sets (decoded and resized in memory, or lazy)."""
    from captcha_crnn.training.datamodule import ImageSet, SyntheticStream, check_labels

    style = inputs.style
    if style is not None:
        _check_style(style, tokenizer, policy)
    check_labels(inputs.train_images + inputs.val_images, tokenizer, policy)
    train_set = ImageSet(inputs.train_images, tokenizer, policy) if inputs.train_images else None
    train_data: Any = train_set
    if style is not None:
        mix = opts.mix if train_set else 1.0
        train_data = SyntheticStream(style, opts.synthetic, tokenizer, policy, opts.seed, train_set, mix)
    val_set = ImageSet(inputs.val_images, tokenizer, policy)
    for img in inputs.train_images + inputs.val_images:
        img.pixels = None  # the sets hold the resized pixels; the originals would double the memory
    lazy = val_set.lazy or (train_set is not None and train_set.lazy)
    workers = opts.workers
    if workers is None:  # DataLoader workers only where decoding happens during training
        workers = min(4, max(1, (os.cpu_count() or 1) - 1)) if lazy or style else 0
    return Sets(train_data, val_set, lazy, workers)


def fold(chars: str) -> str:
    """Lower-case characters, each once, in order."""
    return "".join(dict.fromkeys(chars.lower()))


def folded(items: list) -> list:
    return [replace(item, label=item.label.lower()) for item in items]


def _style_like(images: list, charset: str | None) -> Style:
    """A generated style matching a real folder: its charset, label lengths and image sizes."""
    labels = [img.item.label for img in images]
    widths = [img.size[0] for img in images]
    return Style(
        charset=charset or CTCTokenizer.from_labels(labels).charset,
        length=(min(map(len, labels)), max(map(len, labels))),
        width=(max(16, min(widths)), max(16, max(widths))),
        height=max(16, round(statistics.median(img.size[1] for img in images))),
    )


def _generated_validation(style: Style, seed: int, count: int) -> list:
    from captcha_crnn.data.images import to_pixels
    from captcha_crnn.training.datamodule import ScannedImage

    renderer = Renderer(style, seed + 1_000_003)  # a stream no training shard uses
    images = []
    for i in range(count):
        label, image = renderer.sample()
        pixels = to_pixels(image)
        item = LabelledImage(Path(f"generated-{i:05d}"), label)
        images.append(ScannedImage(item, (pixels.shape[1], pixels.shape[0]), pixels))
    return images


def _check_style(style: Style, tokenizer: CTCTokenizer, policy: InputPolicy) -> None:
    drawn = style.generator()  # the labels it draws: a recipe's or a kind's own, not the style's fields
    missing = tokenizer.unknown_chars(drawn.charset)
    if missing:
        raise LabelError(
            f"generated captchas use characters outside the charset {tokenizer.charset!r}: {missing!r}"
        )
    frames = policy.frames(policy.width_for((style.width[0], style.height)))
    needed = 2 * drawn.length[1] - 1  # the worst case: every character repeated, each pair split by a blank
    if frames < needed:
        raise LabelError(
            f"generated {drawn.length[1]}-character captchas {style.width[0]}x{style.height} give only {frames} "
            f"output frames of the {needed} needed; train with --min-width {needed * policy.width_stride}"
        )
