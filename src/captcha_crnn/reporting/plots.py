"""matplotlib figures, written as PNG files (Agg backend: no display needed)."""

from __future__ import annotations

import csv
import logging
import math
import re
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from captcha_crnn.reporting.analysis import CharAccuracy, show_char

RED, GREEN, GREY = "#d62728", "#2a7d2a", "#444444"
log = logging.getLogger("captcha_crnn")
MISSING_GLYPH = re.compile(r"Glyph \d+ .*missing from")  # matplotlib 3.7: "... from current font."


@dataclass
class Tile:
    """One cell of an image grid: the picture, a caption, and whether it is an error."""

    image: np.ndarray  # (H, W, 3) uint8
    caption: str
    wrong: bool = False


def image_grid(tiles: Sequence[Tile], path: Path, title: str, columns: int | None = None) -> Path:
    """A grid of captioned images; wrong ones get a red frame and a red caption."""
    n = max(len(tiles), 1)
    aspect = float(np.median([t.image.shape[1] / t.image.shape[0] for t in tiles])) if tiles else 3.0
    columns = columns or max(1, min(8, round(math.sqrt(n * 2.5 / aspect))))
    rows = math.ceil(n / columns)
    cell_w = 2.4
    cell_h = cell_w / aspect + 0.45  # room for the caption
    width = max(cell_w * columns, 5.0)  # room for the title even with one image
    title = textwrap.fill(title, width=int(width * 9))  # ~9 characters per inch at 12 pt
    title_h = 0.3 * (title.count("\n") + 1) + 0.3
    fig, axes = plt.subplots(rows, columns, figsize=(width, max(cell_h * rows + title_h, 2.5)), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for ax, tile in zip(axes.flat, tiles):
        ax.imshow(tile.image, interpolation="nearest")
        ax.set_title(tile.caption, fontsize=10, color=RED if tile.wrong else GREY, family="monospace")
        if tile.wrong:
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color(RED)
                spine.set_linewidth(3)
    fig.suptitle(title, fontsize=12)
    _save(fig, path, tight=True)
    return path


def training_curves(metrics_csv: Path, path: Path) -> Path:
    """Loss, validation CER and sequence accuracy, and learning rate against epochs."""
    with Path(metrics_csv).open(newline="") as fh:
        rows = list(csv.DictReader(fh))

    def column(name: str) -> list[float]:
        return [float(r[name]) if r.get(name) not in (None, "") else float("nan") for r in rows]

    epochs = column("epoch")
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    ax_loss.plot(epochs, column("train_loss"), label="train", color="#1f77b4")
    ax_loss.plot(epochs, column("val_loss"), label="validation", color="#ff7f0e")
    ax_loss.set_yscale("log")
    ax_loss.set_title("CTC loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * v for v in column("val_seq_acc")], label="sequence accuracy", color=GREEN)
    ax_acc.plot(epochs, [100 * v for v in column("val_cer")], label="CER", color=RED)
    ax_acc.set_ylim(-2, 102)
    ax_acc.set_title("validation (%)")
    ax_acc.legend()
    ax_lr.plot(epochs, column("lr"), color=GREY)
    ax_lr.set_yscale("log")
    ax_lr.set_title("learning rate")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.15, top=0.9, wspace=0.25)  # tight_layout: +40% time
    _save(fig, path)
    return path


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    path: Path,
    title: str,
    xlabel: str,
    notes: Sequence[str] | None = None,
    integer: bool = False,
) -> Path:
    """Horizontal bars, first label on top, each optionally annotated at its end."""
    height = max(2.0, 0.32 * len(labels) + 1.0)
    fig, ax = plt.subplots(figsize=(7, height))
    ys = np.arange(len(labels))
    ax.barh(ys, values, color="#4c72b0")
    ax.set_yticks(ys, labels, family="monospace")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    if integer:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    top = max(values, default=0) or 1
    ax.set_xlim(0, top * 1.18)
    for y, value, note in zip(ys, values, notes or []):
        ax.text(value + top * 0.01, y, note, va="center", fontsize=8, color=GREY)
    if not labels:
        ax.text(0.5, 0.5, "none", transform=ax.transAxes, ha="center", va="center", color=GREY)
    _save(fig, path, tight=True)
    return path


def confusion_chart(pairs: Sequence[tuple[tuple[str, str], int]], path: Path) -> Path:
    labels = [f"{show_char(t)} -> {show_char(p)}" for (t, p), _ in pairs]
    counts = [n for _, n in pairs]
    title = "most confused characters (truth -> read as)"
    return bar_chart(labels, counts, path, title, "times", [str(n) for n in counts], integer=True)


def char_accuracy_chart(stats: Sequence[CharAccuracy], path: Path) -> Path:
    """Share of each character's occurrences misread, worst on top, annotated with its accuracy: at 99%
    accuracy, bars of the accuracy itself would all look the same."""
    labels = [f"{show_char(s.char)} ({s.total})" for s in stats]
    misread = [100 * (1 - s.accuracy) for s in stats]
    notes = [f"{s.accuracy:.1%} right" for s in stats]
    title = "per-character accuracy: share misread (occurrences)"
    return bar_chart(labels, misread, path, title, "% misread", notes)


def _save(fig: plt.Figure, path: Path, tight: bool = False) -> None:
    """Lay out (`tight`), write and close the figure. A caption's character that the font lacks (a label in
    another script) is drawn as a box: one warning line for the figure, not matplotlib's warning (with its
    source line) for each character. Every other warning goes on as it would."""
    missing: set[str] = set()
    show = warnings.showwarning

    def collect(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if MISSING_GLYPH.search(str(message)):
            missing.add(str(message))
        else:
            show(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "always", message=MISSING_GLYPH.pattern
        )  # each figure says so, not only the first
        warnings.showwarning = collect
        if tight:
            fig.tight_layout()
        fig.savefig(path, dpi=90)
    plt.close(fig)
    if missing:
        log.warning(
            "%s: %d character(s) have no glyph in the plot's font and show as boxes", path, len(missing)
        )
