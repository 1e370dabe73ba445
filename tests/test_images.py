import io

import numpy as np
import pytest
from PIL import Image

from captcha_crnn.data.images import (
    InputPolicy,
    choose_policy,
    load_for_model,
    open_image,
    stretch_for,
    to_grayscale,
)
from captcha_crnn.errors import ImageError


def test_transparent_rgba_is_composited_on_white():
    img = Image.new("RGBA", (10, 4), (0, 0, 0, 0))  # fully transparent black
    img.putpixel((2, 2), (0, 0, 0, 255))  # one opaque black pixel
    gray = to_grayscale(img)
    assert gray.dtype == np.uint8 and gray.shape == (4, 10)
    assert gray[0, 0] == 255 and gray[2, 2] == 0


def test_light_drawing_on_a_transparent_canvas_is_read_from_its_opacity():
    """Light glyphs made for a dark page vanish on white; their opacity keeps them (dark ink on white)."""
    from captcha_crnn.data.images import to_pixels

    img = Image.new("RGBA", (10, 4), (0, 0, 0, 0))
    for x in range(2, 6):
        img.putpixel((x, 1), (250, 240, 200, 255))  # light yellow, fully opaque
    img.putpixel((8, 2), (255, 255, 255, 128))  # white, half opaque
    for read in (to_grayscale, to_pixels):
        out = read(img)
        assert out.shape == (4, 10) and out[0, 0] == 255
        assert out[1, 2] == 0 and out[2, 8] == 127
    dark = Image.new("RGBA", (10, 4), (0, 0, 0, 0))
    dark.putpixel((2, 1), (200, 30, 30, 255))  # a red glyph pixel keeps its colour on white
    assert tuple(to_pixels(dark)[1, 2]) == (200, 30, 30) and tuple(to_pixels(dark)[0, 0]) == (255, 255, 255)
    card = Image.new("RGBA", (10, 4), (255, 255, 255, 255))  # an opaque white card, its corners clear
    card.putpixel((0, 0), (0, 0, 0, 0))
    card.putpixel((4, 2), (0, 0, 0, 255))  # black text on it
    assert to_grayscale(card)[2, 4] == 0 and to_grayscale(card)[1, 1] == 255


def test_only_a_faint_drawing_on_a_transparent_canvas_is_shown_as_the_model_reads_it(tmp_path):
    """The labelling page shows the file itself, except light glyphs on clear pixels, which on a light
    page a person could not see: those as their opacity, dark on white, like the model reads them."""
    from captcha_crnn.data.images import display_pixels, faint_canvas_png

    faint = Image.new("RGBA", (12, 5), (0, 0, 0, 0))
    for x in range(2, 9):
        faint.putpixel((x, 2), (255, 250, 230, 255))
    faint.save(tmp_path / "faint.png")
    shown = Image.open(io.BytesIO(faint_canvas_png(tmp_path / "faint.png")))
    assert shown.format == "PNG" and shown.size == (12, 5)
    pixels = np.asarray(shown.convert("RGB"))
    assert pixels[2, 4].tolist() == [0, 0, 0] and pixels[0, 0].tolist() == [255, 255, 255]
    assert np.array_equal(pixels, display_pixels(faint))
    dark = faint.copy()
    dark.putpixel((1, 1), (0, 0, 0, 255))
    for x in range(2, 9):
        dark.putpixel((x, 2), (20, 20, 120, 255))  # dark glyphs show on a light page as they are
    dark.save(tmp_path / "dark.png")
    Image.new("RGB", (12, 5), "white").save(tmp_path / "opaque.png")
    assert (
        faint_canvas_png(tmp_path / "dark.png") is None and faint_canvas_png(tmp_path / "opaque.png") is None
    )


def test_la_palette_and_sixteen_bit_modes():
    la = Image.new("LA", (6, 3), (0, 0))
    assert to_grayscale(la).min() == 255
    pal = Image.new("P", (6, 3), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.info["transparency"] = 0
    assert to_grayscale(pal).min() == 255
    sixteen = Image.fromarray(np.full((3, 6), 65535, dtype=np.uint16))
    assert to_grayscale(sixteen).min() == 255
    half = Image.fromarray(np.full((3, 6), 32768, dtype=np.uint16))
    assert 126 <= to_grayscale(half).max() <= 129


def test_sixteen_bit_png_round_trip(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(path)
    assert to_grayscale(open_image(path)).min() == 255


def test_arrays_and_bytes_are_accepted():
    arr = np.zeros((20, 60, 3), dtype=np.uint8)
    assert to_grayscale(open_image(arr)).shape == (20, 60)
    assert to_grayscale(open_image(np.ones((20, 60), dtype=np.float32))).min() == 255
    buf = io.BytesIO()
    Image.new("RGB", (60, 20), "white").save(buf, "PNG")
    assert to_grayscale(open_image(buf.getvalue())).shape == (20, 60)
    with pytest.raises(ImageError):
        open_image(np.zeros((2, 2, 5)))


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "empty"), (b"hello, I am text", "not an image"), (None, "truncated")],
)
def test_bad_files_name_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.png"
    if content is None:
        buf = io.BytesIO()
        Image.new("RGB", (200, 80), "white").save(buf, "PNG")
        content = buf.getvalue()[: len(buf.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageError, match=r"bad\.png.*" + problem):
        open_image(path)


def test_a_png_with_a_damaged_header_is_corrupt_not_of_another_format():
    from captcha_crnn.errors import CorruptImageError, UnsupportedImageError

    buf = io.BytesIO()
    Image.new("RGB", (20, 10), "white").save(buf, "PNG")
    damaged = bytearray(buf.getvalue())
    damaged[29] ^= 0xFF  # the header chunk's checksum: Pillow then cannot identify the file at all
    for data in (bytes(damaged), buf.getvalue()[:8]):
        with pytest.raises(CorruptImageError, match=r"x\.png: corrupt PNG image"):
            open_image(data, "x.png")
    with pytest.raises(UnsupportedImageError, match="not an image"):  # not every header is a signature
        open_image(b"GIF of my cat", "x.png")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        open_image(tmp_path)


def test_policy_is_chosen_from_the_data():
    assert choose_policy([(104, 24)] * 3).fixed_width == 140  # 104 * 32 / 24 = 138.7 -> multiple of 4
    assert choose_policy([(200, 50)]).fixed_width == 128
    mixed = choose_policy([(200, 80), (550, 80), (300, 80)])
    assert mixed.fixed_width is None
    assert mixed.height == 32 and mixed.max_width >= 220 and mixed.min_width <= 80
    assert mixed.width_for((550, 80)) == 220
    assert mixed.width_for((200, 80)) == 80


def test_stretch_gives_each_character_enough_frames():
    # 160x60 with 6 characters: 85 px at height 32, 21 frames; 6 characters x 6 frames x 4 px = 144 px
    assert stretch_for([(160, 60)] * 10, [6] * 10) == 1.69
    assert choose_policy([(160, 60)], stretch=1.69).fixed_width == 144
    assert stretch_for([(200, 50)] * 10, [5] * 10) == 1.0  # 128 px: 32 frames, 6.4 per character already
    assert stretch_for([(40, 40)] * 10, [10] * 10) == 3.0  # at most MAX_STRETCH
    # 9 in 10: one image of ten with a long label does not widen all of them
    assert stretch_for([(128, 32)] * 10, [5] * 9 + [8]) == 1.0
    assert stretch_for([(128, 32)] * 10, [5] * 8 + [8] * 2) == 1.5


def test_policy_stretch_round_trips_and_old_policies_have_none():
    policy = InputPolicy(32, 96, 96, 4, 3, 1.2)
    assert InputPolicy.from_dict(policy.to_dict()) == policy
    assert (
        InputPolicy.from_dict({"height": 32, "min_width": 80, "max_width": 80, "width_stride": 4}).stretch
        == 1
    )
    assert InputPolicy(32, 4, 1000, 4, 1, 1.5).width_for((100, 40)) == 120  # 80 px at its aspect ratio
    with pytest.raises(ValueError, match="stretch"):
        InputPolicy.from_dict({**policy.to_dict(), "stretch": 0})


def test_load_for_model_resizes_to_policy():
    policy = InputPolicy(height=32, min_width=64, max_width=96, width_stride=4)
    wide = load_for_model(Image.new("L", (1000, 50), 255), policy)
    narrow = load_for_model(Image.new("L", (10, 50), 255), policy)
    assert wide.shape == (32, 96) and narrow.shape == (32, 64)
