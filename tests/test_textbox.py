"""Cutting images to their text (data/textbox.py) and the training plan's choice to do so."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from captcha_crnn.data.images import InputPolicy
from captcha_crnn.data.labels import LabelledImage
from captcha_crnn.data.looks import Look, draw
from captcha_crnn.data.textbox import INK, _ink, text_box
from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.options import TrainOptions
from captcha_crnn.training.datamodule import ScannedImage, check_labels
from captcha_crnn.training.plan import _crop, validate


def _canvas(rows: tuple[int, int], cols: tuple[int, int], size=(80, 400)) -> np.ndarray:
    pixels = np.full(size, 255, np.uint8)
    for x in range(cols[0], cols[1], 12):  # glyph-like strokes, 6 px wide with gaps
        pixels[rows[0] : rows[1], x : x + 6] = 20
    return pixels


@pytest.mark.parametrize("shape", [(7, 9, 3), (8, 10, 3), (5, 6, 1), (50, 200, 3)])
def test_ink_is_a_difference_from_the_median_colour_of_more_than_INK(shape: tuple[int, ...]) -> None:
    """The histogram median is np.median's, the mean of the two middle values for an even count."""
    rng = np.random.default_rng(sum(shape))
    for k in range(40):
        values = rng.integers(0, 256, shape, dtype=np.uint8)
        if k % 2:
            values[rng.random(shape[:2]) < 0.6] = rng.integers(0, 256, shape[2])  # a background colour
        median = np.median(values.reshape(-1, shape[2]).astype(float), axis=0)
        expected = (np.abs(values.astype(float) - median) > INK).any(axis=2)
        assert np.array_equal(_ink(values), expected)


def test_small_text_is_found_with_a_margin_and_large_text_is_left_whole() -> None:
    left, top, right, bottom = text_box(_canvas((30, 50), (100, 220)))
    assert 20 <= top < 30 and 50 < bottom <= 60  # the band and a margin of about a third of it
    assert 80 <= left < 100 and 214 < right <= 240
    assert text_box(_canvas((5, 75), (100, 220))) is None  # fills the height: nothing to cut
    assert text_box(np.full((40, 100), 200, np.uint8)) is None  # no ink


def test_a_glyph_set_higher_than_the_rest_stays_inside_and_a_thin_line_does_not_widen_the_box() -> None:
    pixels = _canvas((40, 58), (60, 300), size=(100, 400))
    pixels[22:44, 320:326] = 20  # one glyph set higher, a small share of the ink
    pixels[80, :] = 20  # a thin line across, below the text
    box = text_box(pixels)
    assert box is not None and box[1] <= 22 and box[3] < 80 and box[2] >= 326


def test_ink_is_told_from_the_background_by_colour_too() -> None:
    pixels = np.zeros((80, 300, 3), np.uint8)
    pixels[...] = (200, 60, 60)  # a red canvas
    pixels[35:48, 60:200:10] = (60, 60, 200)  # blue strokes, as bright as the red in grey
    box = text_box(pixels)
    assert box is not None and 25 <= box[1] < 35 and 48 < box[3] <= 58


def test_a_cutting_policy_reads_small_glyphs_taller() -> None:
    look = Look(fonts=("dejavu-sans-bold",), background="white", size=(0.22, 0.22))
    image = np.asarray(draw(look, "k7wq", 300, 80, random.Random(1)).convert("L"))
    whole, cut = InputPolicy(max_width=2048), InputPolicy(max_width=2048, crop=True)

    def ink_rows(pixels: np.ndarray) -> int:
        return int(((pixels < 128).any(axis=1)).sum())

    assert whole.resize(image).shape[0] == cut.resize(image).shape[0] == 32
    assert ink_rows(cut.resize(image)) >= 2 * ink_rows(whole.resize(image))
    assert InputPolicy.from_dict(cut.to_dict()) == cut
    assert InputPolicy.from_dict({k: v for k, v in cut.to_dict().items() if k != "crop"}).crop is False


def _scanned(pixels: np.ndarray) -> ScannedImage:
    return ScannedImage(LabelledImage(Path("x.png"), "1"), pixels.shape[1::-1], pixels)


def test_the_plan_cuts_when_most_images_have_small_text_and_says_why() -> None:
    opts = TrainOptions(data=Path("unused"))
    small = [_scanned(_canvas((30, 50), (100, 220))) for _ in range(6)]
    large = [_scanned(_canvas((5, 75), (100, 220))) for _ in range(6)]
    crop, why = _crop(opts, small + large[:2], 1)
    assert crop and why.startswith("text: in 6 of 8 training images")
    crop, why = _crop(opts, large + small[:2], 1)
    assert not crop and why.startswith("none: in 2 of 8")
    assert _crop(TrainOptions(data=Path("unused"), crop="none"), small, 1) == (False, "none (--crop none)")
    lazy = [ScannedImage(img.item, img.size, None) for img in small]
    assert _crop(opts, lazy, 1) == (False, "none: the training images are read lazily")
    with pytest.raises(CaptchaCrnnError, match="--crop text needs the training images in memory"):
        _crop(TrainOptions(data=Path("unused"), crop="text"), lazy, 1)
    with pytest.raises(CaptchaCrnnError, match="--crop must be text or none"):
        validate(TrainOptions(data=Path("unused"), crop="tight"))


def test_label_checks_count_the_frames_of_the_cut_image() -> None:
    """A label needing 13 frames fits the whole 400 px wide image (40), not the text cut to ~40 px (10)."""
    from captcha_crnn.data.tokenizer import CTCTokenizer
    from captcha_crnn.errors import LabelError

    pixels = _canvas((30, 50), (100, 110))  # one stroke
    image = ScannedImage(LabelledImage(Path("small.png"), "1111111"), (400, 80), pixels)
    tokenizer = CTCTokenizer("1")
    check_labels([image], tokenizer, InputPolicy(max_width=2048))
    with pytest.raises(LabelError, match=r"small.png: .* the image cut to its text \(\d+x\d+\) gives"):
        check_labels([image], tokenizer, InputPolicy(max_width=2048, crop=True))


def test_a_frame_around_the_image_is_not_text() -> None:
    pixels = _canvas((30, 50), (100, 220))
    framed = pixels.copy()
    framed[[0, -1], :] = framed[:, [0, -1]] = 20  # Kaptcha's default 1 px border
    left_edge = pixels.copy()
    left_edge[:, :2] = 20  # a dark edge on one side only
    assert text_box(framed) == text_box(left_edge) == text_box(pixels) is not None


def test_a_thin_glyph_apart_at_the_end_is_kept() -> None:
    pixels = _canvas((30, 50), (100, 184))  # seven strokes, 6 px wide
    pixels[30:50, 228:230] = 20  # a "1" two px wide, 44 px further on: under 3% of the ink
    box = text_box(pixels)
    assert box is not None and box[2] >= 230
