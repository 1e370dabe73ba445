"""Finding images and their labels: file stem, a regex over the stem, or a labels file.

A folder that holds `labels.csv` or `labels.tsv` (as `captcha-crnn generate` writes) uses it unless
another labels file is given.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

from captcha_crnn.data.images import IMAGE_SUFFIXES
from captcha_crnn.errors import CaptchaCrnnError, LabelError

log = logging.getLogger("captcha_crnn")

DEFAULT_LABEL_FILES = ("labels.csv", "labels.tsv")
HEADER_NAMES = {"label", "labels", "text", "answer", "solution"}


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: str


def find_images(root: Path, recursive: bool = False) -> list[Path]:
    """Image files under `root`, sorted so that splits are reproducible across file systems."""
    if not root.exists():
        raise CaptchaCrnnError(f"{root}: no such file or folder")
    if root.is_file():
        return [root]
    pattern = "**/*" if recursive else "*"
    found = [p for p in root.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not found:
        hint = ""
        if not recursive and any(
            p.suffix.lower() in IMAGE_SUFFIXES for p in root.glob("*/**/*") if p.is_file()
        ):
            hint = " (its subfolders have some: add --recursive)"
        kinds = ", ".join(sorted(s.lstrip(".") for s in IMAGE_SUFFIXES))
        raise CaptchaCrnnError(f"{root}: no images ({kinds}) found{hint}")
    return sorted(found)


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
        return re.compile(pattern)
    except re.error as exc:
        raise CaptchaCrnnError(
            f"--label-pattern {pattern!r} is not a valid regular expression: {exc}"
        ) from None


def read_labels_file(labels_file: Path, root: Path) -> list[LabelledImage]:
    """Rows of `path,label` (comma or tab separated), paths relative to `root`; a header row is skipped."""
    if not labels_file.is_file():
        raise CaptchaCrnnError(f"{labels_file}: no such labels file")
    try:
        text = labels_file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise CaptchaCrnnError(f"{labels_file}: not a UTF-8 text file") from None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = "\t" if "\t" in first else ","
    items: list[LabelledImage] = []
    for lineno, row in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise LabelError(f"{labels_file}:{lineno}: expected 'path{delimiter}label', got {row!r}")
        rel, label = row[0].strip(), row[1]
        if not items and label.strip().lower() in HEADER_NAMES and not (root / rel).is_file():
            continue  # header row
        items.append(LabelledImage(root / rel, label))
    if not items:
        raise CaptchaCrnnError(f"{labels_file}: no labelled rows")
    return items


def collect(
    root: Path,
    labels_file: Path | None = None,
    label_pattern: str | None = None,
    recursive: bool = False,
) -> list[LabelledImage]:
    """All labelled images of a data folder; files whose name gives no label are skipped with a warning."""
    root = Path(root)
    if labels_file is None and root.is_dir():
        labels_file = next((root / n for n in DEFAULT_LABEL_FILES if (root / n).is_file()), None)
        if labels_file is not None:
            log.info("using labels from %s", labels_file)
    if labels_file is not None:
        if not root.is_dir():
            raise CaptchaCrnnError(f"{root}: no such folder")
        return read_labels_file(Path(labels_file), root)
    pattern = compile_pattern(label_pattern)
    items, unmatched = [], []
    for path in find_images(root, recursive):
        label = label_from_name(path, pattern)
        if label:
            items.append(LabelledImage(path, label))
        else:
            unmatched.append(path)
    if unmatched:
        log.warning(
            "skipped %d file(s) whose name gives no label with --label-pattern %r, e.g. %s",
            len(unmatched),
            label_pattern,
            unmatched[0].name,
        )
    if not items:
        raise CaptchaCrnnError(f"{root}: no file name gives a label (pattern {label_pattern!r})")
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
