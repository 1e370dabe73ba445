"""`train()`: from a data folder to a run folder holding checkpoints, metrics.csv and model.pt.

The phases, in order: validate the options -> build the trainer (which knows this process's rank) ->
read the data -> plan (plan.py: every decision, with its reason) -> prepare the run folder (rundir.py:
only now is an old run replaced) -> build the model and data module -> fit -> finalise (model.pt and
its metrics on the validation images). Self-training (`--unlabelled`) wraps this: self_training.py.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from captcha_crnn import __version__
from captcha_crnn.data.images import InputPolicy
from captcha_crnn.data.labels import LabelledImage
from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.options import TrainOptions
from captcha_crnn.training import rundir
from captcha_crnn.training.hardware import Hardware
from captcha_crnn.training.hardware import choose as choose_hardware
from captcha_crnn.training.inputs import Inputs, Sets, build_sets, read_inputs
from captcha_crnn.training.plan import Plan, resolve, validate

log = logging.getLogger("captcha_crnn")


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    checkpoint: Path  # the one model.pt was made from
    epochs: int
    seconds: float
    val_metrics: dict[str, Any]


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
    """From a data folder (or generated data) to a run folder. `extra` labelled images join the training
    images only (never validation): self-training's pseudo-labels."""
    if opts.unlabelled is not None:
        raise CaptchaCrnnError("--unlabelled trains in self-training rounds: call self_training.self_train")
    _quiet_lightning()
    validate(opts)
    # Every process names a run folder; only rank 0 writes to its own, and the checkpoints reach rank
    # 0's in every process through Lightning (ModelCheckpoint broadcasts its folder in setup).
    run = Path(opts.out) if opts.out else rundir.default_run_dir()
    saved = None
    if opts.resume:  # reads only: the recorded options, before anything is built from them
        opts, saved = rundir.resumed(opts, run)
    machine = choose_hardware(opts)
    trainer, best = _trainer(opts, run, machine)  # Lightning knows this process's rank from its launcher
    leader = trainer.is_global_zero
    if not leader:  # one voice: rank 0 logs for the run
        log.setLevel(logging.WARNING)
    if leader and not opts.resume:
        rundir.existing_run(run, opts)  # refused early (unless --force); nothing is removed yet
    inputs = read_inputs(opts, extra)
    plan = Plan.from_record(saved, opts, inputs) if saved else resolve(opts, inputs)
    plan = replace(plan, choices={**plan.choices, "hardware": machine.reason})
    if plan.schedule == "fixed":  # it ends itself (CRNNSystem.on_train_epoch_end): no early stopping
        from captcha_crnn.training.callbacks import PatientEarlyStopping

        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, PatientEarlyStopping)]
    sets = build_sets(opts, inputs, plan.tokenizer, plan.policy)
    if leader:
        rundir.prepare(run, opts)
        _announce(opts, plan, inputs, sets, run, saved)
    system, datamodule = _system(opts, plan, sets, resuming=saved is not None)
    started = time.monotonic()
    trainer.fit(
        system,
        datamodule=datamodule,
        ckpt_path=str(run / "checkpoints" / "last.ckpt") if opts.resume else None,
        weights_only=True,  # a checkpoint never runs pickled code, even a tampered one
    )
    return _finalise(trainer, best, plan, run, inputs, sets, time.monotonic() - started)


def _announce(
    opts: TrainOptions, plan: Plan, inputs: Inputs, sets: Sets, run: Path, saved: dict | None
) -> None:
    """run.json (a new run only) and the log lines that say what is being trained on."""
    if not saved:
        options = {k: rundir.jsonable(v) for k, v in asdict(opts).items()}
        options["schedule"] = plan.schedule  # resolved: a resumed run keeps it
        record = {
            "version": __version__,
            **plan.to_record(),
            "options": options,
            "train_count": len(sets.train),
            "val_count": len(sets.val),
        }
        (run / "run.json").write_text(json.dumps(record, indent=2))
    what = f"{len(inputs.train_images)} images" if inputs.train_images else ""
    if inputs.style is not None:
        generated = f"{opts.synthetic} generated captchas per epoch"
        what = f"{what} mixed with {generated} ({opts.mix:.0%})" if what else generated
    log.info(
        "training on %s, validating on %d%s; charset %r; input %s; run folder %s",
        what,
        len(sets.val),
        " (read lazily)" if sets.lazy else "",
        plan.charset,
        _describe_policy(plan.policy),
        run,
    )
    if plan.choices and not saved:
        log.info("chosen from the data: %s", "; ".join(f"{k} {v}" for k, v in plan.choices.items()))


def _system(opts: TrainOptions, plan: Plan, sets: Sets, resuming: bool) -> tuple:
    """The system (model, loss, optimiser; its starting weights unless resuming) and the data module."""
    import lightning as L

    from captcha_crnn.model.init import initialise_from
    from captcha_crnn.training.datamodule import CaptchaDataModule
    from captcha_crnn.training.system import CRNNSystem

    L.seed_everything(opts.seed, workers=True, verbose=False)
    datamodule = CaptchaDataModule(
        sets.train, sets.val, plan.policy, opts.batch_size, opts.seed, sets.workers
    )
    system = CRNNSystem(
        plan.model_config,
        plan.charset,
        plan.policy.to_dict(),
        lr=plan.lr,
        weight_decay=opts.weight_decay,
        plateau_patience=opts.plateau_patience,
        augment=opts.augment,
        hold_steps=opts.min_steps,
        warmup_steps=opts.warmup_steps,
        ema=opts.ema,
        fixed_steps=plan.fixed_steps,
    )
    if plan.donor is not None and not resuming:
        initialise_from(system.model, plan.charset, plan.start, plan.donor)
    return system, datamodule


def _trainer(opts: TrainOptions, run: Path, machine: Hardware) -> tuple:
    """The Lightning trainer with its callbacks, and the best-checkpoint callback."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from captcha_crnn.training.callbacks import MetricsCSV, PatientEarlyStopping
    from captcha_crnn.training.checkpoints import AtomicCheckpointIO

    # The best checkpoint by validation loss, not CER: on a small validation set CER touches 0 long before
    # the model is done, while the loss keeps ranking models after that (docs/accuracy.md).
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
    trainer = L.Trainer(
        max_epochs=opts.max_epochs,
        max_time=timedelta(minutes=opts.max_time) if opts.max_time else None,
        accelerator=machine.accelerator,
        devices=machine.devices,
        num_nodes=opts.num_nodes,
        strategy=machine.strategy,
        precision=machine.precision,
        use_distributed_sampler=False,  # the data module shards by rank itself (see datamodule.py)
        reload_dataloaders_every_n_epochs=1 if opts.synthetic else 0,  # the stream learns its epoch
        plugins=[AtomicCheckpointIO()],
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


def _finalise(
    trainer: Any, best: Any, plan: Plan, run: Path, inputs: Inputs, sets: Sets, seconds: float
) -> TrainResult:
    """model.pt from the kept checkpoint (rank 0), and its metrics on the validation images."""
    import torch

    from captcha_crnn.inference.evaluate import evaluate
    from captcha_crnn.inference.recognizer import Recognizer
    from captcha_crnn.model.io import load_model, save_model
    from captcha_crnn.training.callbacks import epochs_recorded

    last_path = run / "checkpoints" / "last.ckpt"
    if not best.best_model_path and not last_path.exists():  # --max-time ended it before validating
        log.warning("stopped before the first validation: model.pt holds the weights as they are")
        trainer.save_checkpoint(last_path)  # every process takes part; rank 0 writes
    chosen = last_path if plan.keep == "last" or not best.best_model_path else Path(best.best_model_path)
    # Forked processes trained (hardware.py): this one's trainer never ran an epoch; metrics.csv knows
    epochs = max(trainer.current_epoch, epochs_recorded(run / "metrics.csv"))
    if not trainer.is_global_zero:
        return TrainResult(run, run / "model.pt", chosen, epochs, seconds, {})
    bundle = load_model(chosen)
    model_path = run / "model.pt"
    meta = {"version": __version__, "trained_epochs": epochs, "checkpoint": chosen.name}
    meta["label_lengths"] = plan.label_lengths  # readings keep to these lengths (Recognizer.decode)
    if plan.ignore_case:
        meta["ignore_case"] = True  # labels were folded to lower case; evaluate folds labels likewise
    save_model(model_path, bundle.model, plan.charset, plan.policy, meta)
    torch.set_grad_enabled(True)
    recognizer = Recognizer(bundle.model, plan.charset, plan.policy, meta)
    val_items = [img.item for img in inputs.val_images]
    pixels = sets.val.pixels if inputs.val_generated else None
    metrics = evaluate(recognizer, val_items, pixels).to_dict()
    return TrainResult(run, model_path, chosen, epochs, seconds, metrics)


def _describe_policy(policy: InputPolicy) -> str:
    colour = "colour" if policy.channels == 3 else "grey"
    if policy.fixed_width:
        return f"{policy.fixed_width}x{policy.height} {colour}"
    return f"height {policy.height}, width {policy.min_width}..{policy.max_width}, {colour}"
