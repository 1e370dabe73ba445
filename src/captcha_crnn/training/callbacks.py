"""Per-epoch metrics appended to `metrics.csv` in the run folder (appended, so a resumed run continues it)."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import lightning as L

COLUMNS = ["epoch", "train_loss", "val_loss", "val_cer", "val_seq_acc", "lr", "elapsed_s"]


class MetricsCSV(L.Callback):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.start = time.monotonic()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        row = {
            "epoch": trainer.current_epoch + 1,
            "train_loss": float(pl_module.train_loss.compute()) if pl_module.train_loss.update_count else "",
            "val_loss": float(metrics["val_loss"]),
            "val_cer": float(metrics["val_cer"]),
            "val_seq_acc": float(metrics["val_seq_acc"]),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "elapsed_s": round(time.monotonic() - self.start, 2),
        }
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
