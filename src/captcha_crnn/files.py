"""Files handled safely: writes that a crash never leaves half done, output folders checked before any
work is done, and model paths checked before any loader reads them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from captcha_crnn.errors import CaptchaCrnnError, ModelFileError, one_line


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """`write(file)` to a temporary file beside `path`, flushed to disk, then renamed over `path`: a crash
    (even SIGKILL) or a full disk mid-write leaves the old file or the new one, never half of one (the
    rename is atomic on POSIX and Windows file systems)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """`text` as UTF-8, atomically (atomic_write)."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def check_writable_folder(folder: Path) -> None:
    """CaptchaCrnnError, with one line, when `folder` is not a folder or could not be made: checked before
    the work whose results go there, not after it (nothing is created here)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CaptchaCrnnError(f"{one_line(folder)}: exists and is not a folder")
    parent = folder
    while not parent.exists():  # the nearest part of the path that exists must be a writable folder
        parent = parent.parent
    if not parent.is_dir():
        raise CaptchaCrnnError(f"{one_line(folder)}: cannot be made, {one_line(parent)} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CaptchaCrnnError(
            f"{one_line(folder)}: cannot be written ({one_line(parent)}: permission denied)"
        )


def check_apart(out: Path, data: Path, recursive: bool, option: str) -> None:
    """An error when `out` would put files among DATA's images (its own folder, or a subfolder that
    --recursive reads): a picture written there is read as a labelled image next time."""
    out, data = Path(out).resolve(), Path(data).resolve()
    if out == data or (recursive and data in out.parents):
        raise CaptchaCrnnError(
            f"{one_line(out)}: {option} is among the images of {one_line(data)}, whose next reading would "
            f"take its pictures for labelled images; choose a folder outside it"
        )


def check_model_path(path: Path) -> None:
    """A ModelFileError unless `path` is a file; for a run folder it names the run's model."""
    if path.is_dir():
        hint = f" (the run's model is {path / 'model.pt'})" if (path / "model.pt").is_file() else ""
        raise ModelFileError(f"{path}: a folder, not a model file{hint}")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
