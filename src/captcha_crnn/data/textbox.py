"""Where the text is in a captcha whose glyphs fill a small part of it.

Read at the network's height (32), glyphs a quarter of the image's height tall are 8 px: too few for
letters. `text_box()` finds the band of rows that holds most of the ink (pixels far from the image's
median colour), and the columns of that band that do, so that `InputPolicy(crop=True)` can cut the image
to its text before resizing, in training and reading alike. Lines across the whole image or noise over
it spread the ink out: the band is then most of the image and nothing is cut.
"""

from __future__ import annotations

import numpy as np

INK = 60  # an ink pixel differs from the median colour by this much in some channel (0-255)
ROW_MASS = 0.97  # the band: the fewest rows that hold this share of the ink
COLUMN_MASS = 0.97  # of the band, the fewest columns that hold this share of its ink
PAD = (0.3, 0.8)  # margin added above and below, and left and right, as a share of the band's height
SMALL = 0.7  # cut only when the padded band is less than this share of the image's height


def text_box(pixels: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the text in (h, w[, c]) uint8 pixels, or None when the text already
    fills most of the image's height (or there is no ink): then the whole image is the text."""
    h, w = pixels.shape[:2]
    values = pixels.reshape(h, w, -1).astype(np.int16)
    ink = (np.abs(values - np.median(values.reshape(-1, values.shape[2]), axis=0)) > INK).any(axis=2)
    top, bottom = _densest(ink.sum(axis=1), ROW_MASS)
    if top is None:
        return None
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
