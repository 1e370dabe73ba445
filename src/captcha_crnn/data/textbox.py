"""Where the text is in a captcha whose glyphs fill a small part of it.

Read at the network's height (32), glyphs a quarter of the image's height tall are 8 px: too few for
letters. `text_box()` finds the band of rows that holds most of the ink (pixels far from the image's
median colour, in upright strokes: a thin line across is not text), and the columns of that band that do, so that `InputPolicy(crop=True)` can cut the image
to its text before resizing, in training and reading alike. Lines across the whole image or noise over
it spread the ink out: the band is then most of the image and nothing is cut.
"""

from __future__ import annotations

import numpy as np

INK = 60  # an ink pixel differs from the median colour by this much in some channel (0-255)
RUN = 3  # ink counts where it runs upright for this many pixels: strokes, not thin lines across
ROW_MASS = 0.97  # the band: the fewest rows that hold this share of the ink
COLUMN_MASS = 0.97  # of the band, the fewest columns that hold this share of its ink
GROW = 2  # beside the band, rows with this many upright ink pixels are text too
PAD = (0.3, 0.8)  # margin added above and below, and left and right, as a share of the band's height
SMALL = 0.8  # cut only when the padded band is less than this share of the image's height


def text_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the text in (h, w[, c]) uint8 pixels, or None when the text already
    fills most of the image's height (or there is no ink): then the whole image is the text."""
    h, w = pixels.shape[:2]
    values = pixels.reshape(h, w, -1).astype(np.int16)
    ink = _upright(
        (np.abs(values - np.median(values.reshape(-1, values.shape[2]), axis=0)) > INK).any(axis=2)
    )
    rows = ink.sum(axis=1)
    top, bottom = _densest(rows, ROW_MASS)
    if top is None:
        return None
    # Grow the band over the rows beside it that still hold upright ink: a glyph set higher or lower
    # than the rest (thin lines and specks are not upright ink, so they do not grow it).
    while top > 0 and rows[top - 1] >= GROW:
        top -= 1
    while bottom < h and rows[bottom] >= GROW:
        bottom += 1
    band = bottom - top
    pad = max(1, round(PAD[0] * band))
    top, bottom = max(0, top - pad), min(h, bottom + pad)
    if bottom - top >= SMALL * h:
        return None
    left, right = _densest(ink[top:bottom].sum(axis=0), COLUMN_MASS)
    if left is None:
        return None
    pad = max(1, round(PAD[1] * band))
    return max(0, left - pad), top, min(w, right + pad), bottom


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
