"""`labels.csv` as the labelling workbench keeps it: read once, rewritten whole and atomically after
every change, by one process at a time.

Columns: `file,label,status,suggestion` (comma or tab separated, as the file already was). `train --labels`
reads the first two; a row whose status is `unreadable` has an empty label, which `train` skips. Rows the
workbench did not write (another tool's, or for files no longer in the folder) are kept; a file with
other columns is refused rather than rewritten without them.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from captcha_crnn.data.labels import HEADER_NAMES, _relative_path
from captcha_crnn.errors import CaptchaCrnnError, one_line
from captcha_crnn.files import atomic_write_text

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

    def __init__(self, path: Path, root: Path | None = None) -> None:
        self.path, self.root = path, root or path.parent  # paths in the file are relative to `root`
        self.rows: dict[str, Row] = {}
        self.delimiter = ","
        self._lock = threading.Lock()  # two tabs, one process: writes go one after the other
        self._holder: io.TextIOWrapper | None = None

    def open(self) -> LabelStore:
        """Take the folder's lock file (a second workbench on the same labels is refused) and read."""
        created = self._claim()
        try:
            if self.path.exists():
                self.rows, self.delimiter = read_rows(self.path, self.root)
        except CaptchaCrnnError:  # a start that fails leaves nothing behind
            if created:  # removed while still held: a workbench that then locks it sees it gone (_claim)
                self._lock_path.unlink(missing_ok=True)
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._holder is not None:
            self._holder.close()
            self._holder = None

    def set(self, rel: str, row: Row) -> None:
        """Store one row: on disk first, in memory only once the file has it (a failed write, e.g. a full
        disk, must not leave the workbench counting a label the file never got)."""
        with self._lock:
            rows = {**self.rows, rel: row}
            self._write(rows)
            self.rows = rows

    def _write(self, rows: dict[str, Row]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=self.delimiter, lineterminator="\n")
        writer.writerow(HEADER)
        for rel, row in rows.items():
            writer.writerow((rel, row.label, row.status, row.suggestion))
        atomic_write_text(self.path, buf.getvalue())

    @property
    def _lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def _claim(self) -> bool:
        """Hold the lock file; whether this created it."""
        lock = self._lock_path
        if not self.path.parent.is_dir():
            raise CaptchaCrnnError(
                f"{one_line(self.path.parent)}: not a folder, so it cannot hold the labels"
            )
        try:
            import fcntl
        except ImportError:  # Windows: one tab's writes are still serialised within the process
            return False
        for _ in range(3):
            created = not lock.exists()
            try:
                holder = open(lock, "a")  # noqa: SIM115 - held open for the workbench's lifetime
            except OSError as exc:
                raise CaptchaCrnnError(
                    f"{one_line(lock)}: cannot create ({one_line(exc.strerror)})"
                ) from None
            try:
                fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder.close()
                raise CaptchaCrnnError(
                    f"{one_line(self.path)}: another `captcha-crnn label` is writing these labels; "
                    "use its page, or stop it first"
                ) from None
            if _same_file(holder, lock):
                self._holder = holder
                return created
            holder.close()  # a failed start removed the file between our open and lock: take the new one
        raise CaptchaCrnnError(f"{one_line(lock)}: the lock file keeps being replaced; try again")


def _same_file(handle: io.TextIOWrapper, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except OSError:
        return False


def read_rows(path: Path, root: Path) -> tuple[dict[str, Row], str]:
    """A labels file's rows by normalised path (as `train` reads it: comma or tab separated, header
    optional, paths relative to `root`), and its delimiter. A file with columns the workbench would not
    keep is refused rather than rewritten without them."""
    where = one_line(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
        first = next((line for line in text.splitlines() if line.strip()), "")
        delimiter = "\t" if "\t" in first else ","
        table = [
            r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if "".join(r).strip()
        ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CaptchaCrnnError(f"{where}: cannot read the labels file ({one_line(exc, 160)})") from None
    columns = list(HEADER[:2])
    if table and _is_header(table[0], root):
        columns = [c.strip().lower() for c in table.pop(0)]
        columns[:2] = HEADER[:2]
    elif table and max(map(len, table)) > 2:
        columns += [f"column {i + 1}" for i in range(2, max(map(len, table)))]
    unknown = [c for c in columns if c not in HEADER]
    if unknown:
        raise CaptchaCrnnError(
            f"{where}: has columns besides file, label, status and suggestion ({', '.join(unknown)}), which "
            "the workbench would not keep; pass --labels NEW.csv"
        )
    rows: dict[str, Row] = {}
    for n, fields in enumerate(table, start=1):
        if len(fields) < 2:
            raise CaptchaCrnnError(f"{where}: row {n}: expected 'file,label', got {one_line(fields, 80)}")
        cell = dict(zip(columns, (f.strip() for f in fields)))
        rel = _relative_path(cell["file"], f"{where}: row {n}", root)
        row = Row(cell["label"], cell.get("status") or LABELLED, cell.get("suggestion", ""))
        if rel in rows and rows[rel] != row:  # the first save would keep one of them, silently
            raise CaptchaCrnnError(
                f"{where}: row {n}: {rel} is listed again, as {row.label!r} where an earlier row has "
                f"{rows[rel].label!r}; keep one of the rows"
            )
        rows[rel] = row
    return rows, delimiter


def _is_header(row: list[str], root: Path) -> bool:
    names = {c.strip().lower() for c in row}
    return (
        bool(names & (HEADER_NAMES | {"file", "path", "filename"})) and not (root / row[0].strip()).is_file()
    )
