"""`train()`: from a data folder to a run folder holding checkpoints, metrics.csv and model.pt."""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from captcha_crnn import __version__
from captcha_crnn.data.images import DEFAULT_HEIGHT, InputPolicy, choose_policy
from captcha_crnn.data.labels import collect, split_validation
from captcha_crnn.data.tokenizer import CTCTokenizer
from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.model.crnn import DEFAULT_PRESET, PRESETS, WIDTH_STRIDE, config_from_preset

log = logging.getLogger("captcha_crnn")

RUN_FILES = ("run.json", "metrics.csv", "curves.png", "model.pt", "checkpoints")


@dataclass
class TrainOptions:
    data: Path
    out: Path | None = None
    val_split: float = 0.1
    val_dir: Path | None = None
    labels: Path | None = None
    val_labels: Path | None = None
    label_pattern: str | None = None
    recursive: bool = False
    charset: str | None = None
    preset: str = DEFAULT_PRESET
    rnn: str | None = None  # None: the preset's
    height: int | None = None
    min_width: int | None = None
    max_width: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    max_epochs: int = 200
    max_time: float | None = None  # minutes
    patience: int = 12
    augment: bool = True
    plateau_patience: int = 5
    min_steps: int = 1000  # CTC first learns to emit only blanks; give it time to leave that plateau
    seed: int = 42
    accelerator: str = "auto"
    devices: int | str = 1
    resume: bool = False
    force: bool = False
    progress: bool = True


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    best_checkpoint: Path
    epochs: int
    seconds: float
    val_metrics: dict[str, Any]


def default_run_dir() -> Path:
    return Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")


def _prepare_run_dir(opts: TrainOptions) -> Path:
    run = Path(opts.out) if opts.out else default_run_dir()
    if opts.resume:
        if not (run / "checkpoints" / "last.ckpt").is_file():
            raise CaptchaCrnnError(
                f"{run}: nothing to resume (no checkpoints/last.ckpt); pass the run's --out"
            )
        return run
    existing = [name for name in RUN_FILES if (run / name).exists()]
    if existing:
        if not opts.force:
            raise CaptchaCrnnError(
                f"{run}: already holds a run ({', '.join(existing)}); use --force to replace it or --resume"
            )
        for name in existing:  # only what a run writes: never the user's other files
            target = run / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
    run.mkdir(parents=True, exist_ok=True)
    return run


def _quiet_lightning() -> None:
    """Keep the console to the progress bar and our own lines."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    for pattern in (
        ".*does not have many workers.*",
        ".*smaller than the logging interval.*",
        ".*Checkpoint directory .* exists and is not empty.*",
        ".*LeafSpec.*is deprecated.*",  # lightning internals on newer torch; nothing the user can act on
    ):
        warnings.filterwarnings("ignore", message=pattern)


def train(opts: TrainOptions) -> TrainResult:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from captcha_crnn.inference.evaluate import evaluate
    from captcha_crnn.inference.recognizer import Recognizer
    from captcha_crnn.model.io import load_model, save_model
    from captcha_crnn.training.callbacks import MetricsCSV, PatientEarlyStopping
    from captcha_crnn.training.datamodule import CaptchaDataModule, ImageSet, check_labels, decode_all
    from captcha_crnn.training.system import CRNNSystem

    _quiet_lightning()
    if opts.preset not in PRESETS:
        raise CaptchaCrnnError(f"unknown --preset {opts.preset!r}; choose from {', '.join(PRESETS)}")
    run = _prepare_run_dir(opts)
    saved = json.loads((run / "run.json").read_text()) if opts.resume else None

    # Data: labelled items, split, decoded once.
    items = collect(Path(opts.data), opts.labels, opts.label_pattern, opts.recursive)
    if opts.val_dir:
        train_items = items
        val_items = collect(Path(opts.val_dir), opts.val_labels, opts.label_pattern, opts.recursive)
    else:
        train_items, val_items = split_validation(items, opts.val_split, opts.seed)
    train_images = decode_all(train_items, "training")
    val_images = decode_all(val_items, "validation")

    # Charset, input policy and architecture: from the data, or from the run being resumed.
    if saved:
        charset, policy = saved["charset"], InputPolicy.from_dict(saved["input_policy"])
        model_config = saved["model_config"]
    else:
        charset = opts.charset or CTCTokenizer.from_labels(i.item.label for i in train_images).charset
        policy = _policy(opts, [img.gray.shape[::-1] for img in train_images])
        model_config = config_from_preset(opts.preset, len(charset) + 1, policy.height, opts.rnn).to_dict()
    tokenizer = CTCTokenizer(charset)
    check_labels(train_images + val_images, tokenizer, policy)

    if not saved:
        record = {
            "version": __version__,
            "charset": charset,
            "input_policy": policy.to_dict(),
            "model_config": model_config,
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
            "train_count": len(train_images),
            "val_count": len(val_images),
        }
        (run / "run.json").write_text(json.dumps(record, indent=2))
    log.info(
        "training on %d images, validating on %d; charset %r; input %s; run folder %s",
        len(train_images),
        len(val_images),
        charset,
        _describe_policy(policy),
        run,
    )

    L.seed_everything(opts.seed, workers=True, verbose=False)
    data = CaptchaDataModule(
        ImageSet(train_images, tokenizer, policy),
        ImageSet(val_images, tokenizer, policy),
        policy,
        opts.batch_size,
        opts.seed,
    )
    system = CRNNSystem(
        model_config,
        charset,
        policy.to_dict(),
        lr=opts.lr,
        weight_decay=opts.weight_decay,
        plateau_patience=opts.plateau_patience,
        augment=opts.augment,
        hold_steps=opts.min_steps,
    )
    checkpoint = ModelCheckpoint(
        dirpath=run / "checkpoints",
        filename="best",
        monitor="val_cer",
        mode="min",
        save_last=True,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        max_epochs=opts.max_epochs,
        max_time=timedelta(minutes=opts.max_time) if opts.max_time else None,
        accelerator=opts.accelerator,
        devices=opts.devices,
        callbacks=[
            checkpoint,
            PatientEarlyStopping(
                monitor="val_cer", mode="min", patience=opts.patience, min_steps=opts.min_steps
            ),
            MetricsCSV(run / "metrics.csv", run / "curves.png"),
        ],
        logger=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        enable_progress_bar=opts.progress,
        default_root_dir=run,
    )
    started = time.monotonic()
    trainer.fit(
        system, datamodule=data, ckpt_path=str(run / "checkpoints" / "last.ckpt") if opts.resume else None
    )
    seconds = time.monotonic() - started
    if not trainer.is_global_zero:
        return TrainResult(
            run, run / "model.pt", Path(checkpoint.best_model_path), trainer.current_epoch, seconds, {}
        )

    best = Path(checkpoint.best_model_path or run / "checkpoints" / "last.ckpt")
    bundle = load_model(best)
    model_path = run / "model.pt"
    meta = {"version": __version__, "trained_epochs": trainer.current_epoch, "best_checkpoint": best.name}
    save_model(model_path, bundle.model, charset, policy, meta)
    torch.set_grad_enabled(True)
    recognizer = Recognizer(bundle.model, charset, policy, meta)
    metrics = evaluate(recognizer, [img.item for img in val_images]).to_dict()
    return TrainResult(run, model_path, best, trainer.current_epoch, seconds, metrics)


def _policy(opts: TrainOptions, sizes: list[tuple[int, int]]) -> InputPolicy:
    height = opts.height or DEFAULT_HEIGHT
    if height % 16 or height < 16:
        raise CaptchaCrnnError(f"--height must be a multiple of 16 (16, 32, 48, 64...), got {height}")
    policy = choose_policy(sizes, height, WIDTH_STRIDE)
    min_width = _round_up(opts.min_width or policy.min_width)
    max_width = max(_round_up(opts.max_width or policy.max_width), min_width)
    return InputPolicy(height, min_width, max_width, WIDTH_STRIDE)


def _round_up(width: int) -> int:
    return -(-width // WIDTH_STRIDE) * WIDTH_STRIDE


def _describe_policy(policy: InputPolicy) -> str:
    if policy.fixed_width:
        return f"{policy.fixed_width}x{policy.height}"
    return f"height {policy.height}, width {policy.min_width}..{policy.max_width}"
