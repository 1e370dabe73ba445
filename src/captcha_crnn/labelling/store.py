"""`labels.csv` as the labelling workbench keeps it: read once, rewritten whole and atomically after
every change, by one process at a time.

Columns: `file,label,status,suggestion`. `train --labels` reads the first two; a row whose status is
`unreadable` has an empty label, which `train` skips. Rows the workbench did not write (another tool's,
or for files no longer in the folder) are kept as they were.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from captcha_crnn.errors import CaptchaCrnnError, one_line

HEADER = ("file", "label", "status", "suggestion")
LABELLED, UNREADABLE = "labelled", "unreadable"


@dataclass
class Row:
    label: str
    status: str = LABELLED
    suggestion: str = ""  # what the model proposed when the label was saved ("" for none)

    @property
    def accepted(self) -> bool:
        """The suggestion was saved unchanged."""
        return self.status == LABELLED and self.label == self.suggestion


class LabelStore:
    """The rows of one labels file, keyed by path relative to the image folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, Row] = {}
        self._lock = threading.Lock()  # two tabs, one process: writes go one after the other
        self._holder: io.TextIOWrapper | None = None

    def open(self) -> LabelStore:
        """Take the folder's lock file (a second workbench on the same labels is refused) and read."""
        self._claim()
        if self.path.exists():
            self.rows = read_rows(self.path)
        return self

    def close(self) -> None:
        if self._holder is not None:
            self._holder.close()
            self._holder = None

    def set(self, rel: str, row: Row) -> None:
        with self._lock:
            self.rows[rel] = row
            self._write()

    def _write(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(HEADER)
        for rel, row in self.rows.items():
            writer.writerow((rel, row.label, row.status, row.suggestion))
        atomic_write_text(self.path, buf.getvalue())

    def _claim(self) -> None:
        lock = self.path.with_name(f".{self.path.name}.lock")
        try:
            import fcntl
        except ImportError:  # Windows: one tab's writes are still serialised within the process
            return
        try:
            holder = open(lock, "a")  # noqa: SIM115 - held open for the workbench's lifetime
        except OSError as exc:
            raise CaptchaCrnnError(f"{one_line(lock)}: cannot create ({one_line(exc.strerror)})") from None
        try:
            fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder.close()
            raise CaptchaCrnnError(
                f"{one_line(self.path)}: another `captcha-crnn label` is writing these labels; "
                "use its page, or stop it first"
            ) from None
        self._holder = holder


def read_rows(path: Path) -> dict[str, Row]:
    """A labels file's rows (comma or tab separated, header optional); a clear error when unreadable."""
    where = one_line(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptchaCrnnError(f"{where}: cannot read the labels file ({one_line(exc, 160)})") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    rows: dict[str, Row] = {}
    for n, fields in enumerate(csv.reader(io.StringIO(text), delimiter="\t" if "\t" in first else ",")):
        if not fields or not "".join(fields).strip():
            continue
        if n == 0 and fields[0].strip().lower() in ("file", "path", "filename"):
            continue
        if len(fields) < 2:
            raise CaptchaCrnnError(f"{where}:{n + 1}: expected 'file,label', got {one_line(fields, 80)}")
        rel, label = fields[0].strip(), fields[1].strip()
        status = fields[2].strip() if len(fields) > 2 and fields[2].strip() else LABELLED
        rows[rel] = Row(label, status, fields[3].strip() if len(fields) > 3 else "")
    return rows


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
