"""The looks of the open-source captcha libraries (data/library_looks.py), for the general recipe."""

from __future__ import annotations

import random

import numpy as np
import pytest

from captcha_crnn.data.library_looks import LIBRARIES, kaptcha
from captcha_crnn.data.looks import font_path


@pytest.fixture(scope="module")
def fonts() -> list[str]:
    return [font_path("droid-mono")]  # ships with the captcha package, so the tests need no Debian fonts


@pytest.mark.parametrize("name", LIBRARIES)
def test_each_look_is_seeded_rgb_and_inked(name, fonts) -> None:
    draw = LIBRARIES[name]
    first, again, other = (np.asarray(draw("ab3Xy", fonts, random.Random(s))) for s in (1, 1, 2))
    assert first.ndim == 3 and first.shape[2] == 3 and first.shape[0] >= 20
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    grey = first.mean(axis=2)
    assert (np.abs(grey - np.median(grey)) > 60).mean() > 0.02  # glyphs and noise stand out


def test_kaptcha_has_its_black_border_and_light_gradient(fonts) -> None:
    pixels = np.asarray(kaptcha("ab3xy", fonts, random.Random(0))).astype(int)
    assert pixels[0].max() == pixels[-1].max() == pixels[:, 0].max() == pixels[:, -1].max() == 0
    inside = pixels[2:-2, 2:-2].mean(axis=2)
    assert 180 <= np.median(inside) <= 255
