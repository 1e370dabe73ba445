"""Finding images and their labels: file stem, a regex over the stem, or a labels file.

A folder that holds `labels.csv` or `labels.tsv` (as `captcha-crnn generate` writes) uses it unless
another labels file is given.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from captcha_crnn.data.images import IMAGE_SUFFIXES
from captcha_crnn.errors import CaptchaCrnnError, LabelError, one_line

log = logging.getLogger("captcha_crnn")

DEFAULT_LABEL_FILES = ("labels.csv", "labels.tsv")
HEADER_NAMES = {"label", "labels", "text", "answer", "solution"}


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: str


def find_images(root: Path, recursive: bool = False) -> list[Path]:
    """Image files under `root`, sorted so that splits are reproducible across file systems."""
    kind = _kind(root)
    if kind is None:
        raise CaptchaCrnnError(f"{one_line(root)}: no such file or folder")
    if kind == "file":
        return [root]
    if kind == "other":
        raise CaptchaCrnnError(f"{one_line(root)}: not a regular file or folder")
    pattern = "**/*" if recursive else "*"
    found = [p for p in root.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not found:
        hint = ""
        if not recursive and any(
            p.suffix.lower() in IMAGE_SUFFIXES for p in root.glob("*/**/*") if p.is_file()
        ):
            hint = " (its subfolders have some: add --recursive)"
        kinds = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
        raise CaptchaCrnnError(f"{one_line(root)}: no images ({kinds}) found{hint}")
    return sorted(found)


def _kind(path: Path) -> str | None:
    """Whether `path` is a "file", a "folder" or "other" (None: missing); a name the OS refuses (too
    long, a NUL byte) or cannot reach is a CaptchaCrnnError."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:  # name too long, embedded NUL byte, permission denied, loop
        reason = exc.strerror.lower() if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CaptchaCrnnError(f"{one_line(path)}: cannot read ({one_line(reason, 200)})") from None
    if stat.S_ISDIR(mode):
        return "folder"
    return "file" if stat.S_ISREG(mode) else "other"


def label_from_name(path: Path, pattern: re.Pattern[str] | None) -> str | None:
    """The file stem, or the first match of `pattern` in it (group 1 if the pattern has a group)."""
    stem = path.stem
    if pattern is None:
        return stem
    match = pattern.search(stem)
    if match is None:
        return None
    return match.group(1) if pattern.groups else match.group(0)


def compile_pattern(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        with warnings.catch_warnings(record=True) as caught:  # e.g. "possible nested set" for "[[a]"
            warnings.simplefilter("always")
            compiled = re.compile(pattern)
        for warning in caught:
            log.warning("--label-pattern %r: %s", pattern, one_line(warning.message, 200))
        return compiled
    except (re.error, OverflowError, RecursionError, ValueError) as exc:  # "a{99999999999}", deep nesting
        raise CaptchaCrnnError(
            f"--label-pattern {pattern!r} is not a valid regular expression: {one_line(exc, 200)}"
        ) from None


def read_labels_file(labels_file: Path, root: Path) -> list[LabelledImage]:
    """Rows of `path,label` (comma or tab separated), paths relative to `root`; a header row is skipped.

    A path must stay inside `root`: absolute paths and `..` are refused, so a labels file cannot make
    the tool read files elsewhere. Whitespace around a path or a label is dropped (`a.png, abcd` labels
    a.png "abcd"). Rows with an empty label are skipped with a warning, as are repeats
    of a row; one path given two different labels is an error. Columns after the label are ignored.
    """
    where = one_line(labels_file)
    kind = _kind(labels_file)
    if kind != "file":
        raise CaptchaCrnnError(f"{where}: " + ("no such labels file" if kind is None else "not a file"))
    try:
        text = labels_file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaptchaCrnnError(f"{where}: not a UTF-8 text file (bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise CaptchaCrnnError(f"{where}: cannot read ({one_line(exc.strerror or exc, 200)})") from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = "\t" if "\t" in first else ","
    items: list[LabelledImage] = []
    seen: dict[str, tuple[str, int]] = {}  # normalised path -> (label, line)
    unlabelled: list[int] = []
    repeated = 0
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    while True:
        lineno = reader.line_num + 1  # where the next row starts
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a field over the csv module's size limit
            raise LabelError(f"{where}:{lineno}: unreadable row ({one_line(exc, 200)})") from None
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            sep = "\\t" if delimiter == "\t" else delimiter
            raise LabelError(f"{where}:{lineno}: expected 'path{sep}label', got {_show(row)}")
        rel, label = row[0].strip(), row[1].strip()  # "a.png, abcd" means "abcd", not " abcd"
        if not items and not seen and label.lower() in HEADER_NAMES and not _is_file(root / rel):
            continue  # header row
        key = _relative_path(rel, f"{where}:{lineno}", root)
        if not label:
            unlabelled.append(lineno)
            continue
        if key in seen:
            first_label, first_line = seen[key]
            if first_label != label:
                raise LabelError(
                    f"{where}:{lineno}: {_show(rel)} is labelled {_show(label)} here but "
                    f"{_show(first_label)} on line {first_line}"
                )
            repeated += 1
            continue
        seen[key] = (label, lineno)
        items.append(LabelledImage(root / rel, label))
    if unlabelled:
        log.warning(
            "skipped %d row(s) of %s with an empty label, e.g. line %d", len(unlabelled), where, unlabelled[0]
        )
    if repeated:
        log.warning("skipped %d repeated row(s) of %s", repeated, where)
    if not items:
        raise CaptchaCrnnError(f"{where}: no labelled rows")
    return items


def _relative_path(rel: str, where: str, root: Path) -> str:
    """`rel` normalised, or a LabelError when it is empty or leads outside `root`."""
    if not rel:
        raise LabelError(f"{where}: empty path")
    if "\0" in rel:
        raise LabelError(f"{where}: path {_show(rel)} holds a NUL character")
    path = Path(rel)  # this system's rules decide what would leave the folder
    if path.anchor:
        raise LabelError(
            f"{where}: path {_show(rel)} is absolute; paths must be relative to the folder {one_line(root)}"
        )
    if ".." in path.parts:
        raise LabelError(f"{where}: path {_show(rel)} leads outside the folder {one_line(root)} (..)")
    if not path.parts:  # "." or "./"
        raise LabelError(f"{where}: path {_show(rel)} is the folder itself, not an image in it")
    return path.as_posix()


def _is_text(label: str) -> bool:
    """False for a str holding the surrogate escapes that stand for undecodable bytes in file names."""
    try:
        label.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _show(value: object) -> str:
    """A value from a labels file for a message: quoted, escaped, and cut if very long."""
    return one_line(repr(value), 120)


def collect(
    root: Path,
    labels_file: Path | None = None,
    label_pattern: str | None = None,
    recursive: bool = False,
) -> list[LabelledImage]:
    """All labelled images of a data folder; files whose name gives no label are skipped with a warning."""
    root = Path(root)
    kind = _kind(root)
    if labels_file is None and kind == "folder":
        labels_file = next((root / n for n in DEFAULT_LABEL_FILES if _is_file(root / n)), None)
        if labels_file is not None:
            log.info("using labels from %s", one_line(labels_file))
    if labels_file is not None:
        if kind != "folder":
            raise CaptchaCrnnError(
                f"{one_line(root)}: "
                + ("no such folder" if kind is None else "not a folder")
                + " (the paths in a labels file are relative to a folder)"
            )
        return read_labels_file(Path(labels_file), root)
    pattern = compile_pattern(label_pattern)
    items, unmatched, undecodable = [], [], []
    for path in find_images(root, recursive):
        label = label_from_name(path, pattern)
        if not label or not label.strip():  # a blank label cannot be learned
            unmatched.append(path)
        elif not _is_text(label):  # bytes that are not UTF-8 in the name: no text to learn or print
            undecodable.append(path)
        else:
            items.append(LabelledImage(path, label))
    if undecodable:
        log.warning(
            "skipped %d file(s) whose name is not valid UTF-8, e.g. %s",
            len(undecodable),
            one_line(undecodable[0].name),
        )
    if unmatched:
        log.warning(
            "skipped %d file(s) whose name gives no label with --label-pattern %r, e.g. %s",
            len(unmatched),
            label_pattern,
            one_line(unmatched[0].name),
        )
    if not items:
        raise CaptchaCrnnError(f"{one_line(root)}: no file name gives a label (pattern {label_pattern!r})")
    return items


def split_validation(
    items: list[LabelledImage], fraction: float, seed: int
) -> tuple[list[LabelledImage], list[LabelledImage]]:
    """Seeded split: items are ordered by path, shuffled with `random.Random(seed)`, and the first
    ceil(fraction * n) (at least 1) become validation. The benchmarks use this same function."""
    if not 0.0 < fraction < 1.0:
        raise CaptchaCrnnError(f"--val-split must be between 0 and 1, got {fraction}")
    if len(items) < 2:
        raise CaptchaCrnnError(f"need at least 2 labelled images to split off validation, found {len(items)}")
    order = sorted(items, key=lambda it: str(it.path))
    random.Random(seed).shuffle(order)
    n_val = min(len(order) - 1, max(1, math.ceil(fraction * len(order))))
    return order[n_val:], order[:n_val]
