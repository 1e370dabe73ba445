"""Training callbacks: a metrics CSV row per validation, and early stopping that waits out the CTC blank plateau."""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path

import lightning as L

log = logging.getLogger("captcha_crnn")

COLUMNS = ["epoch", "train_loss", "val_loss", "val_cer", "val_seq_acc", "val_images", "lr", "elapsed_s"]


def epochs_recorded(metrics: Path) -> int:
    """The last epoch a metrics.csv records (resumed runs included); 0 when there is none. Its last row's
    number, not the count of rows: the fixed schedule does not validate after every epoch."""
    try:
        with Path(metrics).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        return int(rows[-1]["epoch"]) if rows else 0
    except (OSError, KeyError, ValueError):
        return 0


def improved(value: float, best: float, min_delta: float = 0.02, min_abs: float = 1e-3) -> bool:
    """The one rule for "validation loss got better" that LR halving and early stopping share: lower by
    `min_delta` of the best (2%), and by at least `min_abs`, so tiny gains near zero loss do not count."""
    return best == float("inf") or value < best - max(best * min_delta, min_abs)


class PatientEarlyStopping(L.Callback):
    """Stop when the monitored metric (validation loss) has not improved by `min_delta` (relative, and
    at least `min_abs` absolute) for `patience` optimiser steps.

    Steps, not epochs: 12 epochs are 240 steps on 700 images and 2000 on 5000, and a small set's run was
    stopped while its loss was still falling. Nothing counts while the module is `holding()` (CTC's
    blank plateau, see CRNNSystem.holding). The metric is reduced over all processes, so every process
    takes the same decision.
    """

    def __init__(
        self, monitor: str = "val_loss", patience: int = 600, min_delta: float = 0.02, min_abs: float = 1e-3
    ) -> None:
        self.monitor, self.patience, self.min_delta, self.min_abs = monitor, patience, min_delta, min_abs
        self.best = float("inf")
        self.best_step = 0

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.best, self.best_step = float(state["best"]), int(state["best_step"])

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value, step = float(trainer.callback_metrics[self.monitor]), trainer.global_step
        holding = getattr(pl_module, "holding", None)
        better = improved(value, self.best, self.min_delta, self.min_abs)
        if better or (holding is not None and holding()):
            self.best, self.best_step = min(value, self.best), step
        elif step - self.best_step >= self.patience:
            log.info(
                "stopping: no better %s for %d steps (best %.4g)",
                self.monitor,
                step - self.best_step,
                self.best,
            )
            trainer.should_stop = True


class MetricsCSV(L.Callback):
    """Metrics after each validation (every epoch, or every few on the fixed schedule) appended to
    `metrics.csv` (appended, so a resumed run continues the file), and drawn as `curves.png` beside it.

    Drawing takes ~0.2 s, a tenth of a small data set's epoch on 2 cores, so the picture is redrawn after
    an epoch only when `redraw_seconds` have passed since the last drawing, and always when training ends.
    """

    def __init__(self, path: Path, curves: Path | None = None, redraw_seconds: float = 10.0) -> None:
        self.path = Path(path)
        self.curves = curves
        self.redraw_seconds = redraw_seconds
        self.start = time.monotonic()
        self.offset = 0.0  # seconds trained before a resume: elapsed_s continues from there
        self.last_draw = float("-inf")
        self.rows = 0  # data rows in the file; saved in checkpoints

    def state_dict(self) -> dict[str, int]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """On resume, keep only the rows written before the checkpoint: a run killed between writing
        a row and its checkpoint repeats that epoch, and the file must have each epoch once."""
        self.rows = int(state.get("rows", 0))
        if not self.path.exists():
            return
        with self.path.open(newline="") as fh:
            kept = list(csv.DictReader(fh))[: self.rows]
        self.offset = float(kept[-1]["elapsed_s"]) if kept else 0.0
        self.start = time.monotonic()
        # every process of a run restores its state: each writes the same rows through its own file
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)
        tmp.replace(self.path)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        # compute() reduces across processes, so every process must call it, not only the one that writes.
        # The mean since the last row: an epoch, or several where the fixed schedule validates less often.
        train_loss = float(pl_module.train_loss.compute()) if pl_module.train_loss.update_count else ""
        pl_module.train_loss.reset()
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        row = {
            "epoch": trainer.current_epoch + 1,
            "train_loss": train_loss,
            "val_loss": float(metrics["val_loss"]),
            "val_cer": float(metrics["val_cer"]),
            "val_seq_acc": float(metrics["val_seq_acc"]),
            "val_images": int(metrics["val_images"]),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "elapsed_s": round(self.offset + time.monotonic() - self.start, 2),
        }
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
        self.rows += 1
        if time.monotonic() - self.last_draw >= self.redraw_seconds:
            self._draw()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.path.exists():
            self._draw()

    def _draw(self) -> None:
        if self.curves is None:
            return
        self.last_draw = time.monotonic()
        try:
            from captcha_crnn.reporting.plots import training_curves

            training_curves(self.path, self.curves)
        except Exception as exc:  # a picture must never stop a training run
            log.warning("could not draw %s: %s", self.curves, exc)
            self.curves = None
