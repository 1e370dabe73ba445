"""Fine-tuning on the labels so far, in a separate process, while the page stays usable.

`captcha-crnn train` runs as a child process (its own interpreter and cores, so a training step never
blocks the page) on the labelled rows only, starting from the model that makes the suggestions now.
When it ends, the new model makes the suggestions and the order is worked out again (active learning).
"""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from captcha_crnn.errors import CaptchaCrnnError, one_line

log = logging.getLogger("captcha_crnn")
MIN_LABELS = 20  # fewer leave no validation images worth the name
MAX_MINUTES = 5.0
# Beyond --max-time, what a child may take to start and to write its model; past that it is stopped as
# hung, so that a job cannot stay "running" (refusing every new retrain) for ever.
GRACE_SECONDS = 120.0


@dataclass
class JobState:
    state: str = "idle"  # idle, running, done, failed
    labels: int = 0  # labelled images it trained on
    started: float | None = None
    finished: float | None = None
    val_accuracy: float | None = None  # sequence accuracy on its validation images
    message: str = ""
    model: str | None = None  # the new model file, once done

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Retrainer:
    def __init__(self, root: Path, runs: Path, on_done: Callable[[Path], None] | None = None) -> None:
        self.root, self.runs, self.on_done = root, runs, on_done
        self.job = JobState()
        self.count = 0
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self.job.state == "running"

    def start(
        self, labelled: list[tuple[str, str]], init: str | None, minutes: float = MAX_MINUTES
    ) -> JobState:
        """Start fine-tuning on `labelled` (file, label) pairs from the model `init` (None: from scratch)."""
        with self._lock:
            if self.running:
                raise CaptchaCrnnError("a retrain is already running")
            if len(labelled) < MIN_LABELS:
                raise CaptchaCrnnError(
                    f"retraining needs at least {MIN_LABELS} labelled images; there are {len(labelled)}"
                )
            run = self._new_folder()
            labels = run / "train-labels.csv"
            with labels.open("w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerows([("file", "label"), *labelled])
            cmd = [
                sys.executable, "-m", "captcha_crnn", "-q", "train", str(self.root), "--labels", str(labels),
                "--out", str(run / "run"), "--no-progress", "--val-split", "0.2",
                "--max-time", str(minutes), "--init", init or "none",
            ]  # fmt: skip
            self.job = JobState("running", len(labelled), time.time())
            deadline = minutes * 60 + GRACE_SECONDS
            threading.Thread(target=self._run, args=(cmd, run / "run", deadline), daemon=True).start()
            return self.job

    def stop(self) -> None:
        """End a running child with the workbench: it must not train on, orphaned, after the page is gone."""
        with self._lock:
            self._stopping = True
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()

    def _new_folder(self) -> Path:
        """runs/retrain-N with the first free N: an earlier session's models (which may be making the
        suggestions now) are never replaced."""
        self.runs.mkdir(parents=True, exist_ok=True)
        while True:
            self.count += 1
            run = self.runs / f"retrain-{self.count}"
            try:
                run.mkdir()
                return run
            except FileExistsError:
                continue

    def _run(self, cmd: list[str], out: Path, deadline: float) -> None:
        try:
            with self._lock:
                if self._stopping:
                    raise CaptchaCrnnError("the workbench stopped before training began")
                proc = self._proc = subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
            try:
                stdout, stderr = proc.communicate(timeout=deadline)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise CaptchaCrnnError(
                    f"training did not finish within {deadline:.0f} s and was stopped"
                ) from None
            if proc.returncode != 0:
                lines = (stderr or stdout).strip().splitlines() or ["no output"]
                raise CaptchaCrnnError(f"training failed: {one_line(lines[-1], 200)}")
            accuracy = kept_val_accuracy(out)
            if self.on_done is not None:
                self.on_done(out / "model.pt")
            self.job.val_accuracy = accuracy
            self.job.model = str(out / "model.pt")
            self.job.message = f"validation accuracy {accuracy:.1%}" if accuracy is not None else "done"
            self.job.state = "done"
        except Exception as exc:  # the page shows it; the workbench keeps the model it had
            self.job.message = one_line(exc, 300)
            log.warning("retrain failed: %s", self.job.message)
            self.job.state = "failed"  # last: whoever waits on the state sees a finished job
        finally:
            self.job.finished = time.time()


def kept_val_accuracy(run: Path) -> float | None:
    """Validation sequence accuracy of the epoch model.pt keeps: the last one, or the one of lowest
    validation loss (its metadata names the checkpoint it was made from)."""
    from captcha_crnn.model.io import load_model

    try:
        rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r.get("val_loss")]
        kept = load_model(run / "model.pt").meta.get("checkpoint")
    except (OSError, CaptchaCrnnError):
        return None
    if not rows:
        return None
    row = rows[-1] if kept == "last.ckpt" else min(rows, key=lambda r: float(r["val_loss"]))
    return float(row["val_seq_acc"])
