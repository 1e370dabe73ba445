"""`train()`: from a data folder to a run folder holding checkpoints, metrics.csv and model.pt."""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from captcha_crnn import __version__
from captcha_crnn.data.images import (
    DEFAULT_HEIGHT,
    FRAMES_PER_CHAR,
    MAX_STRETCH,
    InputPolicy,
    choose_policy,
    stretch_for,
)
from captcha_crnn.data.labels import LabelledImage, collect, split_validation
from captcha_crnn.data.synthetic import DIGITS, Renderer, Style
from captcha_crnn.data.tokenizer import CTCTokenizer
from captcha_crnn.errors import CaptchaCrnnError, LabelError, one_line
from captcha_crnn.files import check_apart, check_writable_folder
from captcha_crnn.model.crnn import PRESETS, WIDTH_STRIDE, config_from_preset
from captcha_crnn.options import FIXED_LR, PLATEAU_LR, SMALL_VALIDATION, TrainOptions

log = logging.getLogger("captcha_crnn")

RUN_FILES = ("run.json", "metrics.csv", "curves.png", "model.pt", "checkpoints")
CHECKPOINT_FILES = ("best.ckpt", "last.ckpt")


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    checkpoint: Path  # the one model.pt was made from
    epochs: int
    seconds: float
    val_metrics: dict[str, Any]


def default_run_dir() -> Path:
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


# Options that decide which images train and which validate, what is learnt or which weights are kept: a
# resumed run must use the recorded ones, or validation images would move into training.
RECORDED = (
    "val_split",
    "val_dir",
    "labels",
    "val_labels",
    "label_pattern",
    "recursive",
    "charset",
    "ignore_case",
    "seed",
    "synthetic",
    "mix",
    "preset",
    "rnn",
    "height",
    "channels",
    "min_width",
    "max_width",
    "stretch",
    "keep",
    "schedule",
    "steps",
)


def _resumed(opts: TrainOptions, run: Path) -> tuple[TrainOptions, dict[str, Any]]:
    """Check that `run` can be resumed, and return the options with the recorded ones restored.

    An option given on the command line that differs from the recorded value is refused; one left at
    its default takes the recorded value.
    """
    from captcha_crnn.model.io import load_model

    record_path, last = run / "run.json", run / "checkpoints" / "last.ckpt"
    if (run / "self-training").exists():
        raise CaptchaCrnnError(f"{run}: a self-training run (--unlabelled) cannot be resumed; start it again")
    if opts.init != TrainOptions(data=None).init:
        raise CaptchaCrnnError("--init has no effect on --resume: the run continues from its own weights")
    if not last.is_file():
        raise CaptchaCrnnError(f"{run}: nothing to resume (no checkpoints/last.ckpt); pass the run's --out")
    try:
        saved = json.loads(record_path.read_text())
        recorded = saved["options"]
    except (OSError, ValueError, KeyError, TypeError):
        raise CaptchaCrnnError(f"{record_path}: missing or damaged, so the run cannot be resumed") from None
    load_model(last)  # refuses a damaged or tampered file with a one-line error before Lightning reads it
    was_data = recorded.get("data")
    if (
        opts.data
        and was_data
        and Path(was_data).is_dir()
        and Path(opts.data).resolve() != Path(was_data).resolve()
    ):
        # (a folder that has since moved is not checked: its new place is the user's to give)
        raise CaptchaCrnnError(f"{run}: was trained on {one_line(was_data)}; resume it with that DATA folder")
    defaults = TrainOptions(data=None)
    restored = {}
    if "schedule" not in recorded and opts.schedule not in (None, "plateau"):
        raise CaptchaCrnnError(
            f"{run}: was trained before --schedule existed, on the plateau schedule, which a resume keeps"
        )
    for name in RECORDED:
        if name not in recorded:
            continue
        given, was = _jsonable(getattr(opts, name)), recorded[name]
        if given != was and given != _jsonable(getattr(defaults, name)):
            flag = "--" + name.replace("_", "-")
            raise CaptchaCrnnError(f"{run}: was trained with {flag} {was}; resume without {flag} {given}")
        restored[name] = Path(was) if name in ("val_dir", "labels", "val_labels") and was else was
    return replace(opts, **restored), saved


def _existing_run(run: Path, opts: TrainOptions) -> list[str]:
    """The run files already in `run`; an error unless --force (checked first, before reading data), and
    an error when the folder could not be made."""
    check_writable_folder(run)
    existing = [name for name in RUN_FILES if (run / name).exists()]
    if existing and not opts.force:
        raise CaptchaCrnnError(
            f"{run}: already holds a run ({', '.join(existing)}); use --force to replace it or --resume"
        )
    return existing


def _prepare_run_dir(run: Path, opts: TrainOptions) -> None:
    """Make the run folder ready, after every input was checked: a mistyped DATA never costs a run.
    Rank 0 alone calls it.

    An existing run is replaced only with --force, and only the files a run writes; anything else the
    user keeps there (in checkpoints/ too) stays.
    """
    if opts.resume:
        for stale in (run / "checkpoints").glob(".*.tmp"):  # a save that a kill interrupted
            stale.unlink()
        return
    for name in _existing_run(run, opts):
        target = run / name
        if target.is_dir():  # checkpoints/: only ours
            for ours in [*CHECKPOINT_FILES, *(p.name for p in target.glob(".*.tmp"))]:
                (target / ours).unlink(missing_ok=True)
        else:
            target.unlink()
    run.mkdir(parents=True, exist_ok=True)


def _quiet_lightning() -> None:
    """Keep the console to the progress bar and our own lines."""
    import lightning  # noqa: F401  (importing it sets its loggers' levels: ours must come after)

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    for pattern in (
        ".*does not have many workers.*",
        ".*smaller than the logging interval.*",
        ".*Checkpoint directory .* exists and is not empty.*",
        ".*IterableDataset. has .__len__. defined.*",  # SyntheticStream shards by worker itself
        ".*LeafSpec.*is deprecated.*",  # lightning internals on newer torch; nothing the user can act on
    ):
        warnings.filterwarnings("ignore", message=pattern)


def train(opts: TrainOptions, extra: Sequence[LabelledImage] = ()) -> TrainResult:
    """From a data folder (or generated data) to a run folder. The phases, in order: validate the options
    -> build the trainer (which knows this process's rank) -> read and check the data (which decides the
    schedule) -> prepare the run folder (only now is an old run replaced) -> build the model and data
    module -> fit -> finalise (model.pt and validation metrics).

    `extra` labelled images join the training images only (never validation): self-training's
    pseudo-labels. With `opts.unlabelled`, training runs in self-training rounds (self_training.py).
    """
    if opts.unlabelled is not None:
        from captcha_crnn.training.self_training import self_train

        return self_train(opts)
    _quiet_lightning()
    _validate(opts)
    # Every process names a run folder; only rank 0 writes to its own, and the checkpoints reach rank
    # 0's in every process through Lightning (ModelCheckpoint broadcasts its folder in setup).
    run = Path(opts.out) if opts.out else default_run_dir()
    saved = None
    if opts.resume:  # reads only: the recorded options, before anything is built from them
        opts, saved = _resumed(opts, run)
    trainer, best = _trainer(opts, run)  # Lightning knows this process's rank from its launcher
    leader = trainer.is_global_zero
    if not leader:  # one voice: rank 0 logs for the run
        log.setLevel(logging.WARNING)
    if leader and not opts.resume:
        _existing_run(run, opts)  # refused early (unless --force); nothing is removed yet
    data = _load_data(opts, saved, extra)
    opts = replace(opts, schedule=data.schedule)  # recorded in run.json: a resumed run keeps it
    if opts.schedule == "fixed":  # it ends itself (CRNNSystem.on_train_epoch_end): no early stopping
        from captcha_crnn.training.callbacks import PatientEarlyStopping

        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, PatientEarlyStopping)]
    sets = _datasets(opts, data)
    if leader:
        _prepare_run_dir(run, opts)
        _announce(opts, data, sets, run, saved)
    system, datamodule = _system(opts, data, sets, saved)
    started = time.monotonic()
    trainer.fit(
        system,
        datamodule=datamodule,
        ckpt_path=str(run / "checkpoints" / "last.ckpt") if opts.resume else None,
        weights_only=True,  # a checkpoint never runs pickled code, even a tampered one
    )
    keep, _ = _keep(opts, len(data.val_images))
    return _finalise(trainer, best, keep, run, data, sets, time.monotonic() - started)


def _validate(opts: TrainOptions) -> None:
    if opts.preset not in PRESETS:
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
    if opts.charset is not None and not opts.charset:
        raise CaptchaCrnnError("--charset is empty; leave it out to learn the characters from the labels")


@dataclass
class _Sets:
    train: Any  # ImageSet, or SyntheticStream for generated data
    val: Any  # ImageSet
    lazy: bool
    workers: int


def _datasets(opts: TrainOptions, data: _Data) -> _Sets:
    """Check every label against the charset and the input size, then build the training and validation
    sets (decoded and resized in memory, or lazy)."""
    from captcha_crnn.training.datamodule import ImageSet, SyntheticStream, check_labels

    tokenizer, policy, style = data.tokenizer, data.policy, data.style
    if style is not None:
        _check_style(style, tokenizer, policy)
    check_labels(data.train_images + data.val_images, tokenizer, policy)
    train_set = ImageSet(data.train_images, tokenizer, policy) if data.train_images else None
    train_data: Any = train_set
    if style is not None:
        mix = opts.mix if train_set else 1.0
        train_data = SyntheticStream(style, opts.synthetic, tokenizer, policy, opts.seed, train_set, mix)
    val_set = ImageSet(data.val_images, tokenizer, policy)
    for img in data.train_images + data.val_images:
        img.pixels = None  # the sets hold the resized pixels; the originals would double the memory
    lazy = val_set.lazy or (train_set is not None and train_set.lazy)
    workers = opts.workers
    if workers is None:  # DataLoader workers only where decoding happens during training
        workers = min(4, max(1, (os.cpu_count() or 1) - 1)) if lazy or style else 0
    return _Sets(train_data, val_set, lazy, workers)


def _announce(opts: TrainOptions, data: _Data, sets: _Sets, run: Path, saved: dict | None) -> None:
    """run.json (a new run only) and the log lines that say what is being trained on."""
    if not saved:
        record = {
            "version": __version__,
            "charset": data.charset,
            "input_policy": data.policy.to_dict(),
            "model_config": data.model_config,
            "choices": data.choices,
            "label_lengths": label_lengths(data),
            "options": {k: _jsonable(v) for k, v in asdict(opts).items()},
            "train_count": len(sets.train),
            "val_count": len(sets.val),
        }
        (run / "run.json").write_text(json.dumps(record, indent=2))
    what = f"{len(data.train_images)} images" if data.train_images else ""
    if data.style is not None:
        generated = f"{opts.synthetic} generated captchas per epoch"
        what = f"{what} mixed with {generated} ({opts.mix:.0%})" if what else generated
    log.info(
        "training on %s, validating on %d%s; charset %r; input %s; run folder %s",
        what,
        len(sets.val),
        " (read lazily)" if sets.lazy else "",
        data.charset,
        _describe_policy(data.policy),
        run,
    )
    if data.choices and not saved:
        log.info("chosen from the data: %s", "; ".join(f"{k} {v}" for k, v in data.choices.items()))


def _system(opts: TrainOptions, data: _Data, sets: _Sets, saved: dict | None) -> tuple:
    """The system (model, loss, optimiser; its starting weights unless resuming) and the data module."""
    import lightning as L

    from captcha_crnn.training.datamodule import CaptchaDataModule
    from captcha_crnn.training.system import CRNNSystem

    L.seed_everything(opts.seed, workers=True, verbose=False)
    datamodule = CaptchaDataModule(
        sets.train, sets.val, data.policy, opts.batch_size, opts.seed, sets.workers
    )
    system = CRNNSystem(
        data.model_config,
        data.charset,
        data.policy.to_dict(),
        lr=opts.lr or (FIXED_LR if opts.schedule == "fixed" else PLATEAU_LR),
        weight_decay=opts.weight_decay,
        plateau_patience=opts.plateau_patience,
        augment=opts.augment,
        hold_steps=opts.min_steps,
        warmup_steps=opts.warmup_steps,
        ema=opts.ema,
        fixed_steps=opts.steps if opts.schedule == "fixed" else 0,
    )
    if not saved:
        _initialise(system, opts, data)
    return system, datamodule


def _trainer(opts: TrainOptions, run: Path) -> tuple:
    """The Lightning trainer with its callbacks, and the best-checkpoint callback."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from captcha_crnn.training.callbacks import MetricsCSV, PatientEarlyStopping
    from captcha_crnn.training.checkpoints import AtomicCheckpointIO

    # The best checkpoint by validation loss, not CER: on a small validation set CER touches 0 long before
    # the model is done (one run: best.ckpt 94.5% on new images, last.ckpt 98.8%), while the loss keeps
    # ranking models after that.
    best = ModelCheckpoint(
        dirpath=run / "checkpoints",
        filename="best",
        monitor="val_loss",
        mode="min",
        save_on_train_epoch_end=False,  # both checkpoints right after validation, beside the metrics row
        enable_version_counter=False,
    )
    # last.ckpt after every validation. Not save_last=True: Lightning then refreshes "last" only in
    # epochs that improve the best, and a resumed run would repeat every epoch since.
    last = ModelCheckpoint(
        dirpath=run / "checkpoints",
        filename="last",
        save_on_train_epoch_end=False,
        enable_version_counter=False,
    )
    devices = int(opts.devices) if str(opts.devices).isdigit() else 1
    distributed = devices * opts.num_nodes > 1 or os.environ.get("WORLD_SIZE", "1") != "1"
    trainer = L.Trainer(
        max_epochs=opts.max_epochs,
        max_time=timedelta(minutes=opts.max_time) if opts.max_time else None,
        accelerator=opts.accelerator,
        devices=opts.devices,
        num_nodes=opts.num_nodes,
        strategy="ddp" if distributed and opts.strategy == "auto" else opts.strategy,
        use_distributed_sampler=False,  # the data module shards by rank itself (see datamodule.py)
        reload_dataloaders_every_n_epochs=1 if opts.synthetic else 0,  # the stream learns its epoch
        plugins=[AtomicCheckpointIO()],
        gradient_clip_val=5.0,  # a rare huge CTC gradient (a bad batch) must not undo the run
        callbacks=[
            best,
            last,
            PatientEarlyStopping(monitor="val_loss", patience=opts.patience),
            MetricsCSV(run / "metrics.csv", run / "curves.png"),
        ],
        logger=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        enable_progress_bar=opts.progress,
        default_root_dir=run,
    )
    return trainer, best


def _keep(opts: TrainOptions, val_count: int) -> tuple[str, str]:
    """Which checkpoint model.pt is made from ("best" or "last"), and why."""
    if opts.keep:
        return opts.keep, f"{opts.keep} (--keep)"
    if opts.schedule == "fixed":
        return "last", "last: the fixed schedule's end (--keep best for the epoch of lowest validation loss)"
    if val_count < SMALL_VALIDATION:
        return "last", (
            f"last: {val_count} validation images are too few to rank epochs by (fewer than "
            f"{SMALL_VALIDATION}; --keep best for the epoch of lowest validation loss)"
        )
    return "best", f"best: the epoch of lowest loss on {val_count} validation images"


def _finalise(
    trainer: Any, best: Any, keep: str, run: Path, data: _Data, sets: _Sets, seconds: float
) -> TrainResult:
    """model.pt from the kept checkpoint (rank 0), and its metrics on the validation images."""
    import torch

    from captcha_crnn.inference.evaluate import evaluate
    from captcha_crnn.inference.recognizer import Recognizer
    from captcha_crnn.model.io import load_model, save_model

    last_path = run / "checkpoints" / "last.ckpt"
    if not best.best_model_path and not last_path.exists():  # --max-time ended it before validating
        log.warning("stopped before the first validation: model.pt holds the weights as they are")
        trainer.save_checkpoint(last_path)  # every process takes part; rank 0 writes
    chosen = last_path if keep == "last" or not best.best_model_path else Path(best.best_model_path)
    if not trainer.is_global_zero:
        return TrainResult(run, run / "model.pt", chosen, trainer.current_epoch, seconds, {})
    bundle = load_model(chosen)
    model_path = run / "model.pt"
    meta = {"version": __version__, "trained_epochs": trainer.current_epoch, "checkpoint": chosen.name}
    meta["label_lengths"] = label_lengths(data)  # readings keep to these lengths (Recognizer.decode)
    if data.ignore_case:
        meta["ignore_case"] = True  # labels were folded to lower case; evaluate folds labels likewise
    save_model(model_path, bundle.model, data.charset, data.policy, meta)
    torch.set_grad_enabled(True)
    recognizer = Recognizer(bundle.model, data.charset, data.policy, meta)
    val_items = [img.item for img in data.val_images]
    pixels = sets.val.pixels if data.val_generated else None
    metrics = evaluate(recognizer, val_items, pixels).to_dict()
    return TrainResult(run, model_path, chosen, trainer.current_epoch, seconds, metrics)


def label_lengths(data: _Data) -> list[int]:
    """The fewest and most characters of the training and validation labels (and of generated ones)."""
    lengths = [len(img.item.label) for img in data.train_images + data.val_images]
    if data.style is not None:
        lengths += list(data.style.length)
    return [min(lengths), max(lengths)]


@dataclass
class _Data:
    train_images: list  # ScannedImage; empty when training on generated data only
    val_images: list
    val_generated: bool
    style: Style | None
    charset: str
    policy: InputPolicy
    model_config: dict[str, Any]
    tokenizer: CTCTokenizer
    choices: dict[str, str]  # what the defaults chose from the data, and why (run.json; one log line)
    donor: Any = None  # the ModelBundle whose weights start training (--init); None: a random start
    ignore_case: bool = False
    schedule: str = "plateau"  # TrainOptions.schedule, resolved


def _load_data(
    opts: TrainOptions, saved: dict[str, Any] | None, extra: Sequence[LabelledImage] = ()
) -> _Data:
    """Labelled images (scanned), the generated style, and the charset, input policy and architecture:
    from the data, or from the run being resumed."""
    from captcha_crnn.training.datamodule import LAZY_ABOVE, ScannedImage, scan

    train_images: list[ScannedImage] = []
    val_images: list[ScannedImage] = []
    if opts.data is not None:
        items = collect(Path(opts.data), opts.labels, opts.label_pattern, opts.recursive)
        if opts.ignore_case:
            items = _folded(items)
        if opts.val_dir:
            train_items = items
            val_items = collect(Path(opts.val_dir), opts.val_labels, opts.label_pattern, opts.recursive)
            val_items = _folded(val_items) if opts.ignore_case else val_items
        else:
            train_items, val_items = split_validation(items, opts.val_split, opts.seed)
        train_items = [*train_items, *extra]
        lazy = opts.lazy if opts.lazy is not None else len(items) + len(extra) > LAZY_ABOVE
        train_images = scan(train_items, "training", lazy)
        val_images = scan(val_items, "validation", lazy)

    style = None
    if opts.synthetic:
        style = opts.synthetic_style or (
            _style_like(train_images, opts.charset) if train_images else Style(charset=opts.charset or DIGITS)
        )
        if opts.synthetic_style and train_images and not opts.charset:  # draw DATA's characters
            style = replace(style, charset=_style_like(train_images, None).charset)
        if opts.ignore_case:
            style = replace(style, charset=_fold(style.charset))
    choices: dict[str, str] = {}
    if saved:
        charset, policy = saved["charset"], InputPolicy.from_dict(saved["input_policy"])
        model_config = saved["model_config"]
        choices = saved.get("choices", {})
    else:
        if opts.charset:
            charset = _fold(opts.charset) if opts.ignore_case else opts.charset
        else:
            # the validation labels too: a character that only they have must still be readable
            seen = [*train_images, *val_images]
            labels = [img.item.label for img in seen] + ([style.charset] if style else [])
            charset = CTCTokenizer.from_labels(labels).charset
        sizes = [img.size for img in train_images]
        lengths = [len(img.item.label) for img in train_images]
        if style is not None and not train_images:
            sizes = [(style.width[0], style.height), (style.width[1], style.height)]
            lengths = [style.length[1]] * 2
        channels, choices["input"] = _channels(opts, train_images, style)
        policy = _policy(opts, sizes, lengths, channels)
        choices["stretch"] = _describe_stretch(opts, policy)
        config = config_from_preset(opts.preset, len(charset) + 1, policy.height, opts.rnn, policy.channels)
        model_config = config.to_dict()
        choices["model"] = _capacity(opts, policy)
        donor, choices["start"] = _donor(opts, config)
    val_generated = False
    if opts.data is None and style is not None:  # a fixed generated validation set, held in memory
        val_images = _generated_validation(style, opts.seed, max(200, min(2000, opts.synthetic // 10)))
        val_generated = True
    schedule = opts.schedule
    if not saved:
        schedule, choices["schedule"] = _schedule(opts, donor is not None, len(val_images))
        choices["weights"] = _keep(replace(opts, schedule=schedule), len(val_images))[1]
    return _Data(
        train_images,
        val_images,
        val_generated,
        style,
        charset,
        policy,
        model_config,
        CTCTokenizer(charset),
        choices,
        donor if not saved else None,
        opts.ignore_case,
        schedule or "plateau",  # a run recorded before schedules existed: the plateau one
    )


def _schedule(opts: TrainOptions, pretrained: bool, val_count: int) -> tuple[str, str]:
    """The schedule (TrainOptions.schedule), and why."""
    if opts.schedule:
        return opts.schedule, f"{opts.schedule} (--schedule)"
    if pretrained and val_count < SMALL_VALIDATION:
        return "fixed", (
            f"fixed: {opts.steps} steps, the LR falling on a cosine from {opts.lr or FIXED_LR:g}; fine-tuning "
            f"trained weights, and {val_count} validation images are too few to stop on (--schedule "
            "plateau to stop on them)"
        )
    why = "a random start waits out CTC's blank plateau"
    if pretrained:
        why = f"{val_count} validation images are enough to stop on"
    return "plateau", f"plateau: LR halved and training stopped on the validation loss ({why})"


def _fold(chars: str) -> str:
    """Lower-case characters, each once, in order."""
    return "".join(dict.fromkeys(chars.lower()))


def _folded(items: list) -> list:
    return [replace(item, label=item.label.lower()) for item in items]


def _donor(opts: TrainOptions, config: Any) -> tuple[Any, str]:
    """The model whose weights start training, and why: the shipped general model when its architecture
    fits (else a random start), a model file given with --init (which must fit), or none."""
    from captcha_crnn.errors import ModelFileError
    from captcha_crnn.model.init import mismatch
    from captcha_crnn.model.io import load_model
    from captcha_crnn.weights import is_builtin

    if opts.init is None:
        return None, "random weights (--init none)"
    if is_builtin(opts.init):
        try:
            donor = load_model(opts.init)
        except ModelFileError as exc:
            log.warning("starting from random weights: %s", exc)
            return None, "random weights: the shipped general model is missing"
        reason = mismatch(donor.model.config, config)
        if reason:
            return None, f"random weights: the shipped general model does not fit ({reason})"
        return donor, "the shipped general model's weights: it already reads captchas of many styles"
    donor = load_model(opts.init)
    reason = mismatch(donor.model.config, config)
    if reason:
        raise CaptchaCrnnError(f"{opts.init}: --init cannot start this model: {reason}")
    return donor, f"the weights of {opts.init}"


def _initialise(system: Any, opts: TrainOptions, data: _Data) -> None:
    from captcha_crnn.model.init import initialise_from

    if data.donor is not None:
        initialise_from(system.model, data.charset, opts.init, data.donor)  # type: ignore[arg-type]


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
    missing = tokenizer.unknown_chars(style.charset)
    if missing:
        raise LabelError(
            f"generated captchas use characters outside the charset {tokenizer.charset!r}: {missing!r}"
        )
    frames = policy.frames(policy.width_for((style.width[0], style.height)))
    needed = 2 * style.length[1] - 1  # the worst case: every character repeated, each pair split by a blank
    if frames < needed:
        raise LabelError(
            f"generated {style.length[1]}-character captchas {style.width[0]}x{style.height} give only {frames} "
            f"output frames of the {needed} needed; train with --min-width {needed * policy.width_stride}"
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Style):
        return asdict(value)
    return value


def _capacity(opts: TrainOptions, policy: InputPolicy) -> str:
    """Why this network size. The default stays the general model's (nano, height 32) whatever the data:
    starting from its weights beat a random start on the style suite, and a larger network or input would
    start from random weights. What follows the data is the width (stretch): on a tuning style a height-48
    input helped only by being wider, and widening at height 32 did as well in half the time."""
    if opts.preset == TrainOptions(data=None).preset and policy.height == DEFAULT_HEIGHT:
        return (
            f"{opts.preset} at height {policy.height}, the general model's size, so its weights can start "
            "training (--preset small or --height 48 for a larger network from random weights)"
        )
    return f"{opts.preset} at height {policy.height} (--preset, --height)"


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


def _policy(
    opts: TrainOptions, sizes: list[tuple[int, int]], lengths: list[int], channels: int
) -> InputPolicy:
    height = opts.height or DEFAULT_HEIGHT
    if height % 16 or height < 16:
        raise CaptchaCrnnError(f"--height must be a multiple of 16 (16, 32, 48, 64...), got {height}")
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


def _describe_policy(policy: InputPolicy) -> str:
    colour = "colour" if policy.channels == 3 else "grey"
    if policy.fixed_width:
        return f"{policy.fixed_width}x{policy.height} {colour}"
    return f"height {policy.height}, width {policy.min_width}..{policy.max_width}, {colour}"
