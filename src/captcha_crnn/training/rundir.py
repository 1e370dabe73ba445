"""The run folder: a new one (an existing run is refused without --force), or a resumed one, whose
recorded options come back. Nothing here trains; `train()` calls these before and after reading the data."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from captcha_crnn.data.synthetic import Style
from captcha_crnn.errors import CaptchaCrnnError, one_line
from captcha_crnn.files import check_writable_folder
from captcha_crnn.options import TrainOptions

RUN_FILES = ("run.json", "metrics.csv", "curves.png", "model.pt", "checkpoints")
CHECKPOINT_FILES = ("best.ckpt", "last.ckpt")


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
    "crop",
    "keep",
    "schedule",
    "steps",
)


def resumed(opts: TrainOptions, run: Path) -> tuple[TrainOptions, dict[str, Any]]:
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
        given, was = jsonable(getattr(opts, name)), recorded[name]
        if given != was and given != jsonable(getattr(defaults, name)):
            flag = "--" + name.replace("_", "-")
            raise CaptchaCrnnError(f"{run}: was trained with {flag} {was}; resume without {flag} {given}")
        restored[name] = Path(was) if name in ("val_dir", "labels", "val_labels") and was else was
    return replace(opts, **restored), saved


def existing_run(run: Path, opts: TrainOptions) -> list[str]:
    """The run files already in `run`; an error unless --force (checked first, before reading data), and
    an error when the folder could not be made."""
    check_writable_folder(run)
    existing = [name for name in RUN_FILES if (run / name).exists()]
    if existing and not opts.force:
        raise CaptchaCrnnError(
            f"{run}: already holds a run ({', '.join(existing)}); use --force to replace it or --resume"
        )
    return existing


def prepare(run: Path, opts: TrainOptions) -> None:
    """Make the run folder ready, after every input was checked: a mistyped DATA never costs a run.
    Rank 0 alone calls it.

    An existing run is replaced only with --force, and only the files a run writes; anything else the
    user keeps there (in checkpoints/ too) stays.
    """
    if opts.resume:
        for stale in (run / "checkpoints").glob(".*.tmp"):  # a save that a kill interrupted
            stale.unlink()
        return
    for name in existing_run(run, opts):
        target = run / name
        if target.is_dir():  # checkpoints/: only ours
            for ours in [*CHECKPOINT_FILES, *(p.name for p in target.glob(".*.tmp"))]:
                (target / ours).unlink(missing_ok=True)
        else:
            target.unlink()
    run.mkdir(parents=True, exist_ok=True)


def jsonable(value: Any) -> Any:
    """An option as run.json records it."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Style):
        return asdict(value)
    return value
