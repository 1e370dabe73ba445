"""Writing files safely: a text file that a crash never leaves half of, and output folders checked
before any work is done."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from captcha_crnn.errors import CaptchaCrnnError, one_line


def atomic_write_text(path: Path, text: str) -> None:
    """Write beside `path`, flush to disk, rename over it: a crash or kill -9 leaves the old file or the
    new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
