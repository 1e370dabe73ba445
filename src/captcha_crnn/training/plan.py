"""The training plan: every decision `train` makes from the options and the data, made once, in one place,
each with its reason (run.json's `choices`).

`resolve(opts, inputs)` decides for a new run; `Plan.from_record(run.json, opts)` restores a resumed one's.
What is decided: the charset, the input (colour or grey, cut to the text or not, height, widths,
stretch), the network, the starting weights, the schedule and LR, and which weights model.pt keeps.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from captcha_crnn.data.images import (
    DEFAULT_HEIGHT,
    FRAMES_PER_CHAR,
    MAX_STRETCH,
    InputPolicy,
    choose_policy,
    stretch_for,
)
from captcha_crnn.data.synthetic import Renderer, Style
from captcha_crnn.data.tokenizer import CTCTokenizer
from captcha_crnn.errors import CaptchaCrnnError, ModelFileError, one_line
from captcha_crnn.files import check_apart
from captcha_crnn.model.crnn import DEFAULT_PRESET, PRESETS, WIDTH_STRIDE, config_from_preset
from captcha_crnn.options import FIXED_LR, LAZY_ABOVE, PLATEAU_LR, SMALL_VALIDATION, TrainOptions
from captcha_crnn.training.inputs import Inputs, fold
from captcha_crnn.weights import BASES, base_for, is_builtin, manifest

log = logging.getLogger("captcha_crnn")
MAX_AUTO_HEIGHT = 80  # the tallest input `train` picks by itself (_height)


@dataclass(frozen=True)
class Plan:
    charset: str
    policy: InputPolicy
    model_config: dict[str, Any]
    schedule: str  # "plateau" or "fixed" (TrainOptions.schedule, resolved)
    keep: str  # "best" or "last": the checkpoint model.pt is made from
    lr: float  # the peak LR
    fixed_steps: int  # the fixed schedule's length; 0 on the plateau schedule
    label_lengths: list[int]  # the fewest and most characters a reading keeps to (model.pt's metadata)
    ignore_case: bool
    choices: dict[str, str]  # what the defaults chose from the data, and why (run.json; one log line)
    donor: Any = field(default=None, compare=False, repr=False)  # ModelBundle starting training; None: random
    start: str = ""  # what the donor is called in the log ("general", a model file)

    @property
    def tokenizer(self) -> CTCTokenizer:
        return CTCTokenizer(self.charset)

    def to_record(self) -> dict[str, Any]:
        """What run.json records of the plan, beside the options."""
        return {
            "charset": self.charset,
            "input_policy": self.policy.to_dict(),
            "model_config": self.model_config,
            "choices": self.choices,
            "label_lengths": self.label_lengths,
        }

    @classmethod
    def from_record(cls, saved: dict[str, Any], opts: TrainOptions, inputs: Inputs) -> Plan:
        """A resumed run's plan: its recorded decisions (`opts` holds its recorded options), and no donor:
        the run continues from its own weights. A run recorded before schedules existed: the plateau one."""
        schedule = opts.schedule or "plateau"
        return cls(
            charset=saved["charset"],
            policy=InputPolicy.from_dict(saved["input_policy"]),
            model_config=saved["model_config"],
            schedule=schedule,
            keep=keep_weights(opts.keep, schedule, len(inputs.val_images))[0],
            lr=peak_lr(opts, schedule),
            fixed_steps=opts.steps if schedule == "fixed" else 0,
            label_lengths=label_lengths(inputs),
            ignore_case=opts.ignore_case,
            choices=saved.get("choices", {}),
        )


def resolve(opts: TrainOptions, inputs: Inputs) -> Plan:
    """Every decision for a new run, from the options and the data (read, not yet resized)."""
    choices: dict[str, str] = {}
    charset = _charset(opts, inputs)
    sizes = [img.size for img in inputs.train_images]
    lengths = [len(img.item.label) for img in inputs.train_images]
    style = inputs.style
    if style is not None and not inputs.train_images:
        sizes = [(style.width[0], style.height), (style.width[1], style.height)]
        lengths = [style.generator().length[1]] * 2
    channels, choices["input"] = _channels(opts, inputs.train_images, style)
    crop, choices["crop"] = _crop(opts, inputs.train_images, channels)
    if crop:  # the sizes the network sees: those of the cut images
        sizes = [_cut_size(img, channels) for img in inputs.train_images] or sizes
    height, choices["height"] = _height(opts, sizes)
    policy = replace(_policy(opts, sizes, lengths, channels, height), crop=crop)
    choices["stretch"] = _describe_stretch(opts, policy)
    preset, choices["model"] = _capacity(opts, policy)
    config = config_from_preset(preset, len(charset) + 1, policy.height, opts.rnn, policy.channels)
    donor, choices["start"] = _donor(opts, config)
    schedule, choices["schedule"] = _schedule(opts, donor is not None, len(inputs.val_images))
    keep, choices["weights"] = keep_weights(opts.keep, schedule, len(inputs.val_images))
    return Plan(
        charset=charset,
        policy=policy,
        model_config=config.to_dict(),
        schedule=schedule,
        keep=keep,
        lr=peak_lr(opts, schedule),
        fixed_steps=opts.steps if schedule == "fixed" else 0,
        label_lengths=label_lengths(inputs),
        ignore_case=opts.ignore_case,
        choices=choices,
        donor=donor,
        start=str(opts.init),
    )


def peak_lr(opts: TrainOptions, schedule: str) -> float:
    return opts.lr or (FIXED_LR if schedule == "fixed" else PLATEAU_LR)


def label_lengths(inputs: Inputs) -> list[int]:
    """The fewest and most characters of the training and validation labels (and of generated ones)."""
    lengths = [len(img.item.label) for img in inputs.train_images + inputs.val_images]
    if inputs.style is not None:
        lengths += list(inputs.style.generator().length)
    return [min(lengths), max(lengths)]


def _charset(opts: TrainOptions, inputs: Inputs) -> str:
    """--charset, else every character of the labels: the validation labels' too (a character that only
    they have must still be readable) and the generated style's."""
    if opts.charset:
        return fold(opts.charset) if opts.ignore_case else opts.charset
    labels = [img.item.label for img in inputs.train_images + inputs.val_images]
    if inputs.style is not None:
        labels.append(inputs.style.generator().charset)
    return CTCTokenizer.from_labels(labels).charset


def validate(opts: TrainOptions) -> None:
    """The options' own checks, before any data is read or any run folder touched."""
    if opts.preset is not None and opts.preset not in PRESETS:
        raise CaptchaCrnnError(f"unknown --preset {opts.preset!r}; choose from {', '.join(PRESETS)}")
    if opts.data is None and opts.synthetic <= 0:
        raise CaptchaCrnnError("give a DATA folder, or --synthetic N to train on generated captchas")
    if opts.data is not None and opts.out is not None:
        check_apart(opts.out, opts.data, opts.recursive, "--out")
    for option, folder in (("DATA", opts.data), ("--val-dir", opts.val_dir)):
        if folder is not None and Path(folder).is_file():  # one image is no training set
            raise CaptchaCrnnError(
                f"{one_line(folder)}: not a folder; {option} is a folder of labelled images"
            )
    if opts.keep not in (None, "best", "last"):
        raise CaptchaCrnnError(f"--keep must be best or last, got {opts.keep!r}")
    if opts.schedule not in (None, "plateau", "fixed"):
        raise CaptchaCrnnError(f"--schedule must be plateau or fixed, got {opts.schedule!r}")
    if opts.synthetic and not 0 < opts.mix <= 1:
        raise CaptchaCrnnError(f"--mix must be in (0, 1], the share of generated images; got {opts.mix}")
    # Checked here, before --force clears a run folder: numpy refuses such a seed only once training starts.
    if not 0 <= opts.seed < 2**32:
        raise CaptchaCrnnError(f"--seed must be from 0 to {2**32 - 1}, got {opts.seed}")
    for name in ("height", "min_width", "max_width"):
        value = getattr(opts, name)
        if value is not None and value < 16:
            raise CaptchaCrnnError(f"--{name.replace('_', '-')} must be at least 16 pixels, got {value}")
    if opts.min_width and opts.max_width and opts.min_width > opts.max_width:
        raise CaptchaCrnnError(f"--min-width {opts.min_width} is more than --max-width {opts.max_width}")
    if opts.crop not in (None, "text", "none"):
        raise CaptchaCrnnError(f"--crop must be text or none, got {opts.crop!r}")
    if opts.charset is not None and not opts.charset:
        raise CaptchaCrnnError("--charset is empty; leave it out to learn the characters from the labels")


def _schedule(opts: TrainOptions, pretrained: bool, val_count: int) -> tuple[str, str]:
    """The schedule (TrainOptions.schedule), and why."""
    if opts.schedule:
        return opts.schedule, f"{opts.schedule} (--schedule)"
    if pretrained and val_count < SMALL_VALIDATION:
        return "fixed", (
            f"fixed: {opts.steps} batches, the LR falling on a cosine from {opts.lr or FIXED_LR:g}; fine-tuning "
            f"trained weights, and {val_count} validation images are too few to stop on (--schedule "
            "plateau to stop on them)"
        )
    why = "a random start waits out CTC's blank plateau"
    if pretrained:
        why = f"{val_count} validation images are enough to stop on"
    return "plateau", f"plateau: LR halved and training stopped on the validation loss ({why})"


def keep_weights(keep: str | None, schedule: str, val_count: int) -> tuple[str, str]:
    """Which checkpoint model.pt is made from ("best" or "last"), and why: `keep` (--keep) when given."""
    if keep:
        return keep, f"{keep} (--keep)"
    if schedule == "fixed":
        return "last", "last: the fixed schedule's end (--keep best for the validated epoch of lowest loss)"
    if val_count < SMALL_VALIDATION:
        return "last", (
            f"last: {val_count} validation images are too few to rank epochs by (fewer than "
            f"{SMALL_VALIDATION}; --keep best for the epoch of lowest validation loss)"
        )
    return "best", f"best: the epoch of lowest loss on {val_count} validation images"


def _donor(opts: TrainOptions, config: Any) -> tuple[Any, str]:
    """The model whose weights start training, and why: for a shipped name, its base for fine-tuning (or
    the reader itself, whichever architecture fits; else a random start), a model file given with --init
    (which must fit), or none."""
    from captcha_crnn.model.init import mismatch
    from captcha_crnn.model.io import load_model

    if opts.init is None:
        return None, "random weights (--init none)"
    if is_builtin(opts.init):
        reasons = []
        for name in base_for(opts.init):
            try:
                donor = load_model(name)
            except ModelFileError as exc:
                log.warning("cannot start from %s: %s", name, exc)
                reasons.append(f"{name} is missing")
                continue
            reason = mismatch(donor.model.config, config)
            if reason is None:
                return donor, (
                    f"the shipped {opts.init} model's weights ({name}){_resized(donor, config)}: it already "
                    "reads captchas of many styles"
                )
            reasons.append(f"{name}: {reason}")
        return None, f"random weights: the shipped {opts.init} model does not fit ({'; '.join(reasons)})"
    donor = load_model(opts.init)
    reason = mismatch(donor.model.config, config)
    if reason:
        raise CaptchaCrnnError(f"{opts.init}: --init cannot start this model: {reason}")
    return donor, f"the weights of {opts.init}{_resized(donor, config)}"


def _resized(donor: Any, config: Any) -> str:
    height = donor.model.config.height
    return f", read at height {height} and resized to {config.height}" if height != config.height else ""


def _capacity(opts: TrainOptions, policy: InputPolicy) -> tuple[str, str]:
    """The network size (--preset when given), and why. A model file given with --init sets it (its
    weights start training). From the shipped model: the reader's size, from the reader's weights: its
    start reads more of a new site than the base's, with few labels and with thousands, at about twice
    the base's time an epoch (docs/accuracy.md, "the reader for every fine-tune"). Either starts at any
    input height (model/init.py resizes what depends on it)."""
    if opts.preset is not None:
        return opts.preset, f"{opts.preset} at height {policy.height} (--preset)"
    if opts.init is not None and not is_builtin(opts.init):
        own = _file_preset(opts.init)
        if own:
            return (
                own,
                f"{own} at height {policy.height}, the size of {opts.init}, whose weights start training",
            )
    reader = _reader_preset(opts.init)
    if reader:
        return reader, (
            f"{reader} at height {policy.height}, the general reader's size, so its weights start training: "
            f"they read more of a new site than the smaller base's (--preset {DEFAULT_PRESET}: the base, "
            "about twice as fast an epoch)"
        )
    if is_builtin(opts.init):
        return DEFAULT_PRESET, (
            f"{DEFAULT_PRESET} at height {policy.height}, the general model's size, so its weights start training"
        )
    return DEFAULT_PRESET, f"{DEFAULT_PRESET} at height {policy.height}"


def _reader_preset(init: Path | str | None) -> str | None:
    """The preset of the shipped model `init` names, when it has a base apart (a larger reader)."""
    if init is None or not is_builtin(init) or str(init) not in BASES:
        return None
    try:
        return manifest(str(init))["recipe"]["options"]["preset"]
    except (ModelFileError, KeyError, TypeError):
        return None


def _file_preset(init: Path | str) -> str | None:
    """The preset whose layer sizes the model file `init` has; None when it has none (or cannot be read:
    _donor then says why)."""
    from captcha_crnn.model.io import load_model

    try:
        config = load_model(init).model.config
    except CaptchaCrnnError:
        return None
    shape = (tuple(config.channels), config.hidden, config.layers)
    for name in PRESETS:
        ours = config_from_preset(name, config.num_classes, config.height)
        if (tuple(ours.channels), ours.hidden, ours.layers) == shape:
            return name
    return None


def _channels(opts: TrainOptions, images: list, style: Style | None) -> tuple[int, str]:
    """3 (colour input) when any training image has colour, else 1; `--channels` decides when given.

    Glyphs often differ from their background in hue more than in brightness; a grey conversion then
    hides them (a real set stayed at 0% with grey input). Grey data keeps one channel: a third of the
    memory and the same accuracy.
    """
    from captcha_crnn.data.images import has_colour, load_for_model, to_pixels

    if opts.channels is not None:
        if opts.channels not in (1, 3):
            raise CaptchaCrnnError(f"--channels must be 1 (grey) or 3 (colour), got {opts.channels}")
        return opts.channels, "colour (--channels 3)" if opts.channels == 3 else "grey (--channels 1)"
    sample = [img for img in images if img.pixels is not None]
    if sample:
        colour = any(img.pixels.ndim == 3 for img in sample)
    else:  # read lazily (or generated only): look at up to 100 images
        probe = InputPolicy(channels=3, min_width=16, max_width=1 << 16)
        colour = any(has_colour(load_for_model(img.item.path, probe)) for img in images[:100])
    if style is not None and not colour:
        renderer = Renderer(style, 0)
        colour = any(to_pixels(renderer.sample()[1]).ndim == 3 for _ in range(20))
    if colour:
        return 3, "colour: the training images have colour, and hue may be all that separates a glyph"
    return 1, "grey: no training image has colour"


def _crop(opts: TrainOptions, images: list, channels: int) -> tuple[bool, str]:
    """Cut images to their text when, in most training images, it fills a small part of the height:
    read at height 32, glyphs a quarter of the image tall are 8 px, too few for letters. Only for sets
    held in memory, whose cut sizes decide the input's widths."""
    from captcha_crnn.data.textbox import SMALL

    lazy = any(img.pixels is None for img in images)
    if opts.crop is not None:
        if opts.crop == "text" and lazy:
            raise CaptchaCrnnError(
                "--crop text needs the training images in memory, to size the input from the cut ones; "
                f"leave out --lazy (sets of more than {LAZY_ABOVE} images are read lazily)"
            )
        return opts.crop == "text", f"{opts.crop} (--crop {opts.crop})"
    if lazy or not images:
        return False, "none: the training images are read lazily" if lazy else "none: no training images"
    sample = images[:: max(1, len(images) // 200)]
    small = sum(_cut_size(img, channels) != img.size for img in sample)
    where = f"in {small} of {len(sample)} training images looked at, the text fills under {SMALL:.0%} of the height"
    if 2 * small > len(sample):
        return True, f"text: {where}; each image is cut to its text, then resized (--crop none keeps all)"
    return False, f"none: {where} (--crop text cuts those)"


def _cut_size(img: Any, channels: int) -> tuple[int, int]:
    """(width, height) of an in-memory image once cut to its text, as the network will read it."""
    probe = InputPolicy(channels=channels, crop=True)
    cut = probe.cut(probe.convert(img.pixels))
    return cut.shape[1], cut.shape[0]


def _height(opts: TrainOptions, sizes: list[tuple[int, int]]) -> tuple[int, str]:
    """The input's height (--height when given), and why: the height of what the network reads (the
    image, or the text cut out of it) in the median training image, rounded down to a multiple of 16,
    from DEFAULT_HEIGHT to MAX_AUTO_HEIGHT: up to that, its own size, not shrunk to save time. Shrunk,
    small glyphs among strokes as thick as theirs lose what tells c from e; enlarged past its own size,
    an image gains nothing (docs/accuracy.md, "The input at its own height"). Taller inputs cost time in
    proportion to their pixels."""
    if opts.height is not None:
        if opts.height % 16 or opts.height < 16:
            raise CaptchaCrnnError(
                f"--height must be a multiple of 16 (16, 32, 48, 64...), got {opts.height}"
            )
        return opts.height, f"{opts.height} (--height)"
    median = int(statistics.median(h for _, h in sizes)) if sizes else DEFAULT_HEIGHT
    height = min(MAX_AUTO_HEIGHT, max(DEFAULT_HEIGHT, median // 16 * 16))
    what = f"what the network reads (the image, or its text once cut) is {median} px tall in the median image"
    if height == DEFAULT_HEIGHT:
        return height, f"{height}: {what} (--height 48 for more detail)"
    return (
        height,
        f"{height}: {what}; at {DEFAULT_HEIGHT} its strokes would blur (--height {DEFAULT_HEIGHT} trains faster)",
    )


def _policy(
    opts: TrainOptions, sizes: list[tuple[int, int]], lengths: list[int], channels: int, height: int
) -> InputPolicy:
    if opts.stretch is not None and not 0.25 <= opts.stretch <= MAX_STRETCH:
        raise CaptchaCrnnError(f"--stretch must be between 0.25 and {MAX_STRETCH:g}, got {opts.stretch:g}")
    stretch = opts.stretch or stretch_for(sizes, lengths, height, WIDTH_STRIDE)
    policy = choose_policy(sizes, height, WIDTH_STRIDE, channels, stretch)
    min_width = _round_up(opts.min_width or policy.min_width)
    max_width = max(_round_up(opts.max_width or policy.max_width), min_width)
    return replace(policy, min_width=min_width, max_width=max_width)


def _describe_stretch(opts: TrainOptions, policy: InputPolicy) -> str:
    if opts.stretch is not None:
        return f"{policy.stretch:g} (--stretch)"
    if policy.stretch == 1:
        return f"1: the images' own aspect ratio gives {FRAMES_PER_CHAR}+ frames per character"
    return (
        f"{policy.stretch:g}: images widened so that 9 in 10 labels get {FRAMES_PER_CHAR} frames per "
        "character (--stretch 1 keeps the aspect ratio)"
    )


def _round_up(width: int) -> int:
    return -(-width // WIDTH_STRIDE) * WIDTH_STRIDE
