"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from captcha_crnn.data.labels import LabelledImage


def train_default_model(
    train: Sequence[LabelledImage], val: Sequence[LabelledImage], tmp: Path, extra: Sequence[str] = ()
) -> Path:
    """Train with default settings on exactly these images (symlinked into tmp/train and tmp/val, so the
    validation images are never used for training or checkpoint choice) and return the model.pt."""
    for name, part in (("train", train), ("val", val)):
        (tmp / name).mkdir()
        for item in part:
            (tmp / name / item.path.name).symlink_to(item.path.resolve())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "captcha_crnn",
            "-q",
            "train",
            str(tmp / "train"),
            "--val-dir",
            str(tmp / "val"),
            "--out",
            str(tmp / "run"),
            "--no-progress",
            *extra,
        ],
        check=True,
    )
    return tmp / "run" / "model.pt"


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """A temporary git worktree of this repository at `ref` (a baseline to import code from), removed after."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", str(tree), ref],
            check=True,
            capture_output=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], check=False)
