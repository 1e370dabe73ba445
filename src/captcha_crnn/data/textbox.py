"""Where the text is in a captcha whose glyphs fill a small part of it.

Read at the network's height (32), glyphs a quarter of the image's height tall are 8 px: too few for
letters. `text_box()` finds the band of rows that holds most of the ink (pixels far from the image's
median colour, in upright strokes: a thin line across, a speck or a frame is not text), grown over the
rows beside it that still hold some, and the columns of that band that do, so that
`InputPolicy(crop=True)` can cut the image to its text before resizing, in training and reading alike.
Where ink is spread over the image (thick curves, heavy noise), the band is most of it and nothing is
cut: a cut that loses part of a glyph costs more than one that keeps too much.
"""

from __future__ import annotations

import numpy as np

INK = 60  # an ink pixel differs from the median colour by this much in some channel (0-255)
RUN = 3  # ink counts where it runs upright for this many pixels: strokes, not thin lines across
ROW_MASS = 0.97  # the band: the fewest rows that hold this share of the ink
COLUMN_MASS = 0.97  # of the band, the fewest columns that hold this share of its ink
GROW = 2  # beside the band, rows with this many upright ink pixels are text too
PAD = (0.3, 0.8)  # margin added above and below, and left and right, as a share of the band's height
FRAME = 0.9  # a column or row this full of ink is a frame around the image, not text
SMALL = 0.8  # cut only when the padded band is less than this share of the image's height


def text_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the text in (h, w[, c]) uint8 pixels, or None when the text already
    fills most of the image's height (or there is no ink): then the whole image is the text."""
    h, w = pixels.shape[:2]
    ink = _unframed(_upright(_ink(pixels.reshape(h, w, -1))))
    rows = ink.sum(axis=1)
    top, bottom = _densest(rows, ROW_MASS)
    if top is None:
        return None
    # Grow the band over the rows beside it that still hold upright ink: a glyph set higher or lower
    # than the rest (thin lines and specks are not upright ink, so they do not grow it).
    top, bottom = _grown(rows, top, bottom, 0)
    band = bottom - top
    pad = max(1, round(PAD[0] * band))
    top, bottom = max(0, top - pad), min(h, bottom + pad)
    if bottom - top >= SMALL * h:
        return None
    columns = ink[top:bottom].sum(axis=0)
    left, right = _densest(columns, COLUMN_MASS)
    if left is None:
        return None
    # The densest columns may leave out a thin glyph at either end (a 1 holds little ink): take in any
    # ink within a band's height of the text, and so on outwards.
    left, right = _grown(columns, left, right, band)
    pad = max(1, round(PAD[1] * band))
    return max(0, left - pad), top, min(w, right + pad), bottom


def _ink(values: np.ndarray) -> np.ndarray:
    """(h, w) True where a pixel of (h, w, c) uint8 differs from the median colour by more than INK in
    some channel. The median comes from each channel's histogram and the test from a 256-entry table:
    the same answer as np.median and a subtraction, in a third of the time (the reader's latency)."""
    count = values.shape[0] * values.shape[1]
    levels = np.arange(256)
    ink = np.zeros(values.shape[:2], bool)
    for c in range(values.shape[2]):
        channel = values[:, :, c]
        cumulative = np.cumsum(np.bincount(channel.ravel(), minlength=256))
        low = np.searchsorted(cumulative, (count - 1) // 2, side="right")
        high = np.searchsorted(cumulative, count // 2, side="right")
        ink |= (np.abs(levels - (low + high) / 2) > INK)[channel]
    return ink


def _unframed(ink: np.ndarray) -> np.ndarray:
    """`ink` without the columns and rows it fills almost whole: a frame or border, not text."""
    ink = ink.copy()
    ink[:, ink.mean(axis=0) >= FRAME] = False
    ink[ink.mean(axis=1) >= FRAME, :] = False
    return ink


def _grown(mass: np.ndarray, start: int, stop: int, gap: int) -> tuple[int, int]:
    """[start, stop) widened over the neighbouring entries of `mass` that hold GROW or more, across
    runs of at most `gap` entries that hold less."""
    while True:
        before = np.flatnonzero(mass[max(0, start - 1 - gap) : start] >= GROW)
        after = np.flatnonzero(mass[stop : stop + 1 + gap] >= GROW)
        if not len(before) and not len(after):
            return start, stop
        if len(before):
            start = max(0, start - 1 - gap) + int(before[0])
        if len(after):
            stop = stop + int(after[-1]) + 1


def _upright(ink: np.ndarray) -> np.ndarray:
    """The ink pixels in vertical runs of RUN or more: glyphs' upright strokes, not thin lines across."""
    h = ink.shape[0]
    if h < RUN:
        return ink
    windows = np.ones((h - RUN + 1, ink.shape[1]), bool)
    for k in range(RUN):
        windows &= ink[k : h - RUN + 1 + k]
    kept = np.zeros_like(ink)
    for k in range(RUN):
        kept[k : h - RUN + 1 + k] |= windows
    return kept


def _densest(mass: np.ndarray, share: float) -> tuple[int | None, int]:
    """The shortest [start, stop) run of `mass` that holds `share` of its sum; (None, 0) when it is 0."""
    total = int(mass.sum())
    if total == 0:
        return None, 0
    cumulative = np.concatenate(([0], np.cumsum(mass)))
    need = share * total
    # for each start, the first stop whose run reaches the share; then the shortest of those runs
    stops = np.searchsorted(cumulative, cumulative[:-1] + need, side="left")
    valid = stops < len(cumulative)
    starts = np.flatnonzero(valid)
    lengths = stops[valid] - starts
    best = int(np.argmin(lengths))
    return int(starts[best]), int(stops[valid][best])
