"""The Pillow renderer (data/looks.py) and Style's use of it."""

from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captcha_crnn.data import looks
from captcha_crnn.data.looks import BACKGROUNDS, COLOURS, Look, draw, layers
from captcha_crnn.data.synthetic import Renderer, Style, generate
from captcha_crnn.errors import CaptchaCrnnError

BUSY = Look(
    fonts=("dejavu-sans", "dejavu-serif-bold", "droid-mono"),
    background="gradient",
    colours="multi",
    rotation=20,
    baseline=0.05,
    warp=0.06,
    blur=1.0,
    strike_lines=(1, 3),
    arcs=(1, 1),
    dots=0.05,
    outline=True,
    shadow=True,
)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def test_same_seed_same_pixels_and_other_seeds_differ() -> None:
    first = draw(BUSY, "Ab3xQ", 200, 60, random.Random(5))
    again = draw(BUSY, "Ab3xQ", 200, 60, random.Random(5))
    other = draw(BUSY, "Ab3xQ", 200, 60, random.Random(6))
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other))


@pytest.mark.parametrize("background", BACKGROUNDS)
@pytest.mark.parametrize("colours", COLOURS)
def test_every_background_and_colour_mode_gives_the_requested_size_and_mode(background, colours) -> None:
    if colours == "equiluminant" and background in ("white", "transparent"):
        with pytest.raises(CaptchaCrnnError, match="coloured background"):
            Look(background=background, colours=colours)
        return
    look = Look(fonts=("dejavu-sans",), background=background, colours=colours, rotation=10, warp=0.05)
    image = draw(look, "k7Wq", 173, 47, random.Random(1))
    assert image.size == (173, 47)
    assert image.mode == ("RGBA" if background == "transparent" else "RGB")
    if background == "transparent":
        alpha = pixels(image)[..., 3]
        assert alpha.min() == 0 and alpha.max() == 255  # clear background, opaque glyphs
    else:
        assert pixels(image).std() > 5  # the glyphs show


@pytest.mark.parametrize("background", ["mid", "texture", "gradient", "light"])
def test_equiluminant_glyphs_differ_in_hue_not_brightness(background) -> None:
    """Under the glyphs, the grey ("L") image hardly changes while the colour image changes a lot; a
    glyph colour picked at random would change the grey image about as much as the colour one."""
    look = Look(fonts=("dejavu-sans-bold",), background=background, colours="equiluminant", rotation=10)
    for seed in range(3):
        background_image, text, _ = layers(look, "HWKEM", 180, 60, random.Random(seed))
        inside = pixels(text)[..., 3] == 255
        assert inside.mean() > 0.05  # glyph pixels to measure
        combined = Image.alpha_composite(background_image.convert("RGBA"), text).convert("RGB")
        grey_change = np.abs(
            pixels(combined.convert("L")).astype(int) - pixels(background_image.convert("L")).astype(int)
        )[inside]
        rgb_change = np.abs(pixels(combined).astype(int) - pixels(background_image).astype(int))[inside]
        assert grey_change.max() <= 2, background
        assert rgb_change.sum(axis=1).mean() > 60, background  # a hue change that people see


def test_equiluminant_step_keeps_luminance_and_moves_far() -> None:
    rng = random.Random(0)
    for colour in [(128, 128, 128), (200, 80, 40), (40, 160, 220), (230, 230, 210)]:
        low = high = np.array(colour, dtype=float)
        step = looks.equiluminant_step(low, high, rng)
        moved = np.array(colour) + step
        assert abs(looks.luminance(moved) - looks.luminance(colour)) < 1e-6
        assert moved.min() >= -1e-9 and moved.max() <= 255 + 1e-9
        assert np.abs(step).sum() > 40


def test_dark_glyphs_on_a_light_background_have_contrast() -> None:
    """The same measure as the equiluminant test, on glyphs that do change brightness: it can fail."""
    background_image, text, _ = layers(Look(fonts=("dejavu-sans-bold",)), "HWKEM", 180, 60, random.Random(0))
    inside = pixels(text)[..., 3] == 255
    combined = Image.alpha_composite(background_image.convert("RGBA"), text).convert("L")
    change = np.abs(pixels(combined).astype(int) - pixels(background_image.convert("L")).astype(int))
    assert change[inside].mean() > 100


def test_unknown_font_is_a_one_line_error() -> None:
    with pytest.raises(CaptchaCrnnError) as caught:
        Look(fonts=("dejavu-sans", "comic-sans"))
    assert "comic-sans" in str(caught.value) and "\n" not in str(caught.value)


def test_missing_font_file_names_the_debian_package(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(looks, "FONT_DIR", tmp_path)
    looks.font_path.cache_clear()
    try:
        with pytest.raises(CaptchaCrnnError, match="fonts-dejavu-extra") as caught:
            draw(Look(fonts=("dejavu-condensed",)), "12", 60, 30, random.Random(0))
        assert "\n" not in str(caught.value)
    finally:
        looks.font_path.cache_clear()


def test_bad_look_values_are_rejected() -> None:
    for bad in [{"background": "plaid"}, {"spacing": (-0.6, 0.0)}, {"size": (0.8, 0.5)}, {"dots": -1.0}]:
        with pytest.raises(CaptchaCrnnError):
            Look(**bad)


def test_style_round_trips_through_asdict_and_json() -> None:
    style = Style(charset="abc123", length=(3, 7), width=(120, 300), height=50, noise_lines=(1, 2), look=BUSY)
    data = asdict(style)
    assert Style.from_dict(data) == style
    assert Style.from_dict(json.loads(json.dumps(data))) == style
    assert Style.from_dict(asdict(Style())) == Style()
    with pytest.raises(CaptchaCrnnError, match="colour"):
        Style.from_dict({**data, "colour": 1})


def test_renderer_uses_the_look_and_keeps_noise_lines() -> None:
    style = Style(width=(120, 160), height=40, noise_lines=(2, 2), look=Look(background="transparent"))
    label, image = Renderer(style, 3).sample()
    assert image.mode == "RGBA" and 120 <= image.width <= 160 and image.height == 40
    again = Renderer(style, 3).sample()
    assert again[0] == label and np.array_equal(pixels(again[1]), pixels(image))


def test_generate_a_folder_with_a_look(tmp_path: Path) -> None:
    look = Look(fonts=("dejavu-serif",), background="texture", colours="random", strike_lines=(1, 2))
    labels = generate(tmp_path / "set", 5, Style(length=(3, 5), look=look), seed=2)
    rows = list(csv.DictReader(labels.open()))
    assert len(rows) == 5 and len(list((tmp_path / "set").glob("*.png"))) == 5
    for row in rows:
        assert Image.open(tmp_path / "set" / row["file"]).size[1] == 60 and 3 <= len(row["label"]) <= 5


def _ink_rows(mask: Image.Image) -> np.ndarray:
    return np.flatnonzero(np.asarray(mask).max(axis=1) > 127)


def test_hershey_glyphs_are_sized_like_truetype_ones() -> None:
    """size is the capital height / image height for OpenCV's stroke fonts as for TrueType ones."""
    for font in ("hershey-simplex", "hershey-complex-bold", "dejavu-sans"):
        _, text, _ = layers(Look(fonts=(font,), size=(0.6, 0.6)), "H", 120, 50, random.Random(0))
        rows = _ink_rows(text.getchannel("A"))
        assert 27 <= len(rows) <= 33, font  # 30 px, give or take a stroke


def test_hershey_three_has_a_flat_top_unlike_dejavu() -> None:
    """The look that sets these fonts apart (a 3 read as 5 by a model that never saw one): the top row of
    ink spans most of the glyph. OpenCV 5 draws a round-topped 3 under the same name."""
    for font, flat in (("hershey-simplex", True), ("hershey-duplex", True), ("dejavu-sans", False)):
        mask, _ = looks._glyph("3", looks.font_path(font), 60, 0.0, False)
        top = (np.asarray(mask) > 127)[_ink_rows(mask)[0]]
        assert (top.sum() > 0.6 * mask.width) == flat, font


def test_hershey_fonts_refuse_characters_they_would_draw_as_question_marks() -> None:
    with pytest.raises(CaptchaCrnnError, match="printable ASCII only, not 'ä'"):
        draw(Look(fonts=("hershey-simplex",)), "aä", 60, 30, random.Random(0))


def test_hershey_fonts_without_opencv_4_are_a_one_line_error(monkeypatch) -> None:
    from types import SimpleNamespace

    from captcha_crnn.data import general

    monkeypatch.setitem(__import__("sys").modules, "cv2", SimpleNamespace(__version__="5.0.0"))
    looks.font_path.cache_clear()
    general.hershey_faces.cache_clear()
    try:
        with pytest.raises(CaptchaCrnnError) as caught:
            draw(Look(fonts=("hershey-simplex",)), "12", 60, 30, random.Random(0))
        message = str(caught.value)
        assert "found OpenCV 5.0.0" in message and "opencv-python-headless<5" in message
        assert "\n" not in message
        assert general.hershey_faces() == ()  # the general recipe draws TrueType fonts instead
    finally:
        looks.font_path.cache_clear()
        general.hershey_faces.cache_clear()


def test_the_wider_families_keep_full_faces_a_few_of_each_family(tmp_path) -> None:
    """more_fonts() keeps faces with every CHARSET glyph, at most MORE_PER_FAMILY of a family, and none of
    DejaVu (the held-out styles' fonts); an empty root gives none."""
    import shutil

    import captcha

    from captcha_crnn.data import general

    droid = Path(captcha.__file__).parent / "data" / "DroidSansMono.ttf"
    for k in range(general.MORE_PER_FAMILY + 2):  # one family, more faces than are kept
        shutil.copy(droid, tmp_path / f"droid{k}.ttf")
    (tmp_path / "dejavu").mkdir()
    shutil.copy(droid, tmp_path / "dejavu" / "DejaVuSans.ttf")
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    kept = general.more_fonts((str(tmp_path),))
    assert len(kept) == general.MORE_PER_FAMILY
    assert all("droid" in Path(f).name for f in kept)
    assert general.more_fonts((str(tmp_path / "none"),)) == ()


def test_fonts_carried_under_a_root_are_found_whatever_the_root_is_called(tmp_path) -> None:
    """CAPTCHA_CRNN_FONT_ROOT stands for / (fonts carried to a lent GPU): the recipe finds the same faces
    there, and the carried-to folder's own name (here words that exclude faces) excludes none."""
    import shutil
    import subprocess
    import sys

    import captcha

    pytest.importorskip("fontTools")  # more_fonts reads glyphs with it
    droid = Path(captcha.__file__).parent / "data" / "DroidSansMono.ttf"
    root = tmp_path / "Sample Caps Math"
    base = root / "usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"
    more = [root / f"usr/share/fonts/opentype/more/Droid{k}.ttf" for k in range(2)]
    for path in (base, *more):
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(droid, path)
    code = "import json; from captcha_crnn.data import general; print(json.dumps([general.fonts(), general.more_fonts()]))"
    env = {**os.environ, "CAPTCHA_CRNN_FONT_ROOT": str(root)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    found, found_more = json.loads(done.stdout)
    assert found == [str(base)]
    assert found_more == [str(p) for p in more]


def test_a_font_cut_to_ascii_draws_as_the_whole_file_does(tmp_path, monkeypatch) -> None:
    """`scripts/pretrain.py pack` carries fonts cut to printable ASCII: same pixels, same family name."""
    pytest.importorskip("fontTools")
    import captcha
    from fontTools.ttLib import TTFont

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "scripts"))
    import pretrain

    droid = str(Path(captcha.__file__).parent / "data" / "DroidSansMono.ttf")
    cut = tmp_path / "cut" / "DroidSansMono.ttf"
    pretrain.cut_font(droid, cut)
    assert cut.stat().st_size < Path(droid).stat().st_size / 2
    assert TTFont(cut)["name"].getDebugName(1) == TTFont(droid)["name"].getDebugName(1)
    for rotation in (0.0, 20.0):
        look = Look(fonts=(droid,), rotation=rotation, warp=0.05)
        whole = np.asarray(draw(look, "k7Wq9Z", 200, 60, random.Random(5)))
        carried = np.asarray(draw(replace(look, fonts=(str(cut),)), "k7Wq9Z", 200, 60, random.Random(5)))
        assert whole.std() > 0 and np.array_equal(whole, carried)


def test_crop_cuts_the_image_to_its_text_with_at_most_the_margin_asked_for() -> None:
    plain = Look(fonts=("dejavu-sans",), background="white", size=(0.5, 0.5))
    full = draw(plain, "k7Wq", 200, 60, random.Random(3))
    tight = draw(Look(**{**asdict(plain), "crop": 0.0}), "k7Wq", 200, 60, random.Random(3))
    loose = draw(Look(**{**asdict(plain), "crop": 0.5}), "k7Wq", 200, 60, random.Random(3))
    ink = np.asarray(tight.convert("L")) < 128
    assert full.size == (200, 60)
    # no margin: the glyphs touch all four edges, and the text's height is most of the image's
    assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
    assert tight.width < 150 and 30 <= tight.height <= 45  # cap height 30, plus the ascender and descender
    assert tight.width < loose.width <= tight.width + tight.height and tight.height < loose.height
    with pytest.raises(CaptchaCrnnError, match="crop"):
        Look(crop=-0.1)


def _glyph_heights(look: Look, label: str) -> list[int]:
    return [mask.height for mask, _, _ in looks._layout(look, label, 400, 60, random.Random(2))]


def test_mixed_case_draws_letters_in_both_cases_and_digits_unchanged() -> None:
    plain = Look(fonts=("dejavu-sans",), background="white", size=(0.5, 0.5), spacing=(0.1, 0.1))
    mixed = Look(**{**asdict(plain), "mixed_case": True})
    assert len(set(_glyph_heights(plain, "aaaaaaaaaa"))) == 1  # one size: x-height only
    assert len(set(_glyph_heights(mixed, "aaaaaaaaaa"))) == 2  # x-height and cap height
    assert len(set(_glyph_heights(mixed, "7777777777"))) == 1


def test_outline_as_a_chance_makes_some_glyphs_hollow() -> None:
    def ink(outline: float) -> list[float]:  # each glyph's share of inked pixels
        look = Look(fonts=("dejavu-sans-bold",), size=(0.7, 0.7), outline=outline)
        masks = looks._layout(look, "HHHHHHHHHHHH", 600, 60, random.Random(4))
        return [float(np.asarray(mask).mean()) / 255 for mask, _, _ in masks]

    solid, hollow = min(ink(0.0)), max(ink(1.0))
    assert hollow < 0.8 * solid
    mixed = ink(0.5)
    assert any(i <= hollow for i in mixed) and any(i >= solid for i in mixed)  # both in one image
    with pytest.raises(CaptchaCrnnError, match="outline"):
        Look(outline=1.5)


def test_fade_runs_from_white_to_grey_and_pattern_is_not_plain() -> None:
    for seed in range(6):
        fade = pixels(looks._background("fade", 120, 40, random.Random(seed))).astype(int)
        assert (fade[..., 0] == fade[..., 2]).all()  # grey
        assert fade.max() == 255 and 170 <= fade.min() <= 225
        pattern = pixels(looks._background("pattern", 120, 40, random.Random(seed))).astype(int)
        assert len(np.unique(pattern.reshape(-1, 3), axis=0)) >= 2 and pattern.mean() > 150  # light


def test_pastel_glyphs_are_soft_but_readable_on_white() -> None:
    rng = random.Random(0)
    for i in range(50):
        colour = looks._glyph_colour("pastel", (255, 255, 255), i, 0.0, rng)
        assert 100 <= looks.luminance(colour) <= 235 and max(colour) - min(colour) > 20


def test_segments_and_jpeg_change_the_pixels_around_the_same_text() -> None:
    plain = Look(fonts=("dejavu-sans",), background="white", size=(0.5, 0.5))
    base = pixels(draw(plain, "k7Wq", 200, 60, random.Random(3))).astype(int)
    lines = pixels(draw(Look(**{**asdict(plain), "segments": (20, 20)}), "k7Wq", 200, 60, random.Random(3)))
    assert ((lines != 255).any(-1) & (base == 255).all(-1)).sum() > 100  # ink where the plain one is white
    jpeg = pixels(draw(Look(**{**asdict(plain), "jpeg": 20}), "k7Wq", 200, 60, random.Random(3))).astype(int)
    difference = np.abs(jpeg - base)
    assert difference.max() > 20 and difference.mean() < 8  # artefacts, not another image
    for bad in ({"jpeg": 0}, {"jpeg": 100}, {"segments": (3, 1)}):
        with pytest.raises(CaptchaCrnnError):
            Look(**bad)


def test_each_style_has_one_generator_whose_labels_fit_its_charset_and_length() -> None:
    from captcha_crnn import arithmetic
    from captcha_crnn.data import synthetic

    cases = {
        synthetic.LibraryText: Style(charset="xyz", length=(2, 3)),
        synthetic.LookText: Style(charset="xyz", length=(2, 3), look=Look()),
        synthetic.Arithmetic: Style(kind="arithmetic", look=Look()),
    }
    for kind, style in cases.items():
        generator = style.generator()
        assert type(generator) is kind
        rng = random.Random(1)
        for _ in range(20):
            label = generator.label(rng)
            assert set(label) <= set(generator.charset)
            assert generator.length[0] <= len(label) <= generator.length[1]
    assert cases[synthetic.Arithmetic].generator().charset == arithmetic.CHARSET


@pytest.mark.parametrize("font", ["dejavu-sans", "hershey-simplex-bold"])
def test_aliased_glyphs_have_hard_edges_even_rotated_and_scaled(font) -> None:
    """Hard edges: the text layer's opacity is all or nothing, where the default look antialiases."""
    if font.startswith("hershey"):
        pytest.importorskip("cv2")
    # ten glyphs in a narrow image: the layout scales them down, and each is rotated
    look = Look(fonts=(font,), background="white", rotation=20, size=(0.8, 0.8))
    soft = np.asarray(layers(look, "a8Kx3g0QmZ", 90, 40, random.Random(0)).text.getchannel("A"))
    hard = np.asarray(
        layers(replace(look, aliased=True), "a8Kx3g0QmZ", 90, 40, random.Random(0)).text.getchannel("A")
    )
    assert set(np.unique(hard)) == {0, 255}
    assert ((soft > 0) & (soft < 255)).mean() > 0.02
