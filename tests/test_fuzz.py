"""Hostile files: random and damaged images, huge headers, odd names and hostile labels files.

Every input must end in a decoded image, the project's own error (one line that starts with the file's
name) or a documented skip: never another exception type, a warning on the way, a crash or a hang. The
hypothesis tests are bounded (few examples, a deadline) so that the file runs in seconds; the atheris
harnesses in fuzz/ run the same properties for longer.
"""

from __future__ import annotations

import io
import os
import re
import resource
import shutil
import struct
import tempfile
import time
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from captcha_crnn.data.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_FORMATS,
    InputPolicy,
    load_for_model,
    open_image,
    to_grayscale,
)
from captcha_crnn.data.labels import collect
from captcha_crnn.errors import CaptchaCrnnError, ImageError, ImageTooLargeError, LabelError, one_line

# Warnings must not leak either: Pillow's (decompression bomb, damaged TIFF tags) and numpy's (casting NaN).
pytestmark = pytest.mark.filterwarnings("error")

SMALL_LIMIT = 1 << 20  # keeps damaged headers that claim a few megapixels cheap to try
FAST = settings(
    max_examples=150,
    deadline=timedelta(seconds=3),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
POLICY = InputPolicy(height=32, min_width=32, max_width=128)


# ---------------------------------------------------------------- valid encodings to damage


def _encodings() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 256, (7, 11, 3), dtype=np.uint8))
    out = {}
    for fmt, modes in {
        "PNG": ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"],
        "JPEG": ["RGB", "L", "CMYK"],
        "GIF": ["P"],
        "BMP": ["RGB", "P", "1"],
        "WEBP": ["RGB", "RGBA"],
        "TIFF": ["RGB", "L", "CMYK", "I;16", "F", "LAB", "YCbCr"],
    }.items():
        for mode in modes:
            buf = io.BytesIO()
            base.convert(mode).save(buf, fmt)
            out[f"{fmt}-{mode}"] = buf.getvalue()
    for compression in ("tiff_lzw", "tiff_adobe_deflate", "packbits"):
        buf = io.BytesIO()
        base.save(buf, "TIFF", compression=compression)
        out[f"TIFF-{compression}"] = buf.getvalue()
    return out


ENCODINGS = _encodings()
SUFFIXES = [".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".PNG", ".txt", ".csv", ""]


def check_decoded_or_clean_error(call, name: str) -> Image.Image | None:
    """The image, fully usable by the model's preprocessing, or None after a clean ImageError."""
    try:
        img = call()
    except ImageError as exc:
        check_one_line(str(exc), name)
        return None
    assert isinstance(img, Image.Image)
    assert img.width > 0 and img.height > 0
    gray = to_grayscale(img)
    assert gray.dtype == np.uint8 and gray.shape == (img.height, img.width)
    assert POLICY.resize(gray).shape[0] == POLICY.height
    return img


def check_one_line(message: str, name: str) -> None:
    assert message.isprintable(), repr(message)  # no line break, no control character
    assert message.startswith(f"{one_line(name)}: "), message
    assert len(message) < len(one_line(name)) + 400, message


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, value in flips:
        buf[pos % len(buf)] = value
    if cut is not None:
        buf = buf[: cut % (len(buf) + 1)]
    return bytes(buf)


flips_st = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8)
cut_st = st.none() | st.integers(0, 1 << 16)


@FAST
@given(data=st.binary(max_size=4096), prefix=st.sampled_from([b"", *(d[:16] for d in ENCODINGS.values())]))
def test_random_bytes(data, prefix):
    check_decoded_or_clean_error(lambda: open_image(prefix + data, "upload.png", SMALL_LIMIT), "upload.png")
    check_decoded_or_clean_error(
        lambda: open_image(prefix + data, "upload.png", SMALL_LIMIT, IMAGE_FORMATS), "upload.png"
    )


@settings(FAST, max_examples=400)
@given(key=st.sampled_from(sorted(ENCODINGS)), flips=flips_st, cut=cut_st)
def test_damaged_encodings_as_bytes(key, flips, cut):
    data = mutate(ENCODINGS[key], flips, cut)
    img = check_decoded_or_clean_error(lambda: open_image(data, "upload.img", SMALL_LIMIT), "upload.img")
    if not flips and cut is None:
        assert img is not None and img.size == (11, 7)  # the undamaged file decodes


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(FAST, max_examples=150, suppress_health_check=list(HealthCheck))
@given(key=st.sampled_from(sorted(ENCODINGS)), flips=flips_st, cut=cut_st, suffix=st.sampled_from(SUFFIXES))
def test_damaged_files_with_right_or_wrong_extension(scratch, key, flips, cut, suffix):
    path = scratch / f"sample{suffix}"
    path.write_bytes(mutate(ENCODINGS[key], flips, cut))
    check_decoded_or_clean_error(lambda: open_image(path, max_pixels=SMALL_LIMIT), str(path))
    check_decoded_or_clean_error(lambda: open_image(str(path), max_pixels=SMALL_LIMIT), str(path))
    try:
        load_for_model(path, POLICY, max_pixels=SMALL_LIMIT, formats=IMAGE_FORMATS)
    except ImageError as exc:
        check_one_line(str(exc), str(path))


# Names as a user or an upload can give them: line breaks, tabs, escapes, right-to-left marks, emoji.
name_st = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1, max_size=40
).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 200)


@settings(FAST, max_examples=60, suppress_health_check=list(HealthCheck))
@given(name=name_st, content=st.sampled_from([b"", b"GIF89a", b"\x89PNG\r\n\x1a\n", b"text"]))
def test_odd_file_names_stay_on_one_line(scratch, name, content):
    folder = Path(tempfile.mkdtemp(dir=scratch))
    try:
        path = folder / name
        path.write_bytes(content)
        try:
            open_image(path)
        except ImageError as exc:
            check_one_line(str(exc), str(path))
        else:
            pytest.fail("not an image, yet decoded")
        with pytest.raises(ImageError) as raised:
            open_image(content + b"\0", name=name)  # an upload's own file name
        check_one_line(str(raised.value), name)
    finally:
        shutil.rmtree(folder)


# ---------------------------------------------------------------- not files, and huge headers


def test_zero_bytes_folders_fifos_devices_and_missing(scratch):
    cases = {}
    (scratch / "zero.png").write_bytes(b"")
    cases["zero.png"] = "empty file"
    (scratch / "x.png").mkdir(exist_ok=True)
    cases["x.png"] = "is a folder"
    os.mkfifo(scratch / "fifo.png")  # opening it would block forever
    cases["fifo.png"] = "not a regular file"
    (scratch / "zeros.png").symlink_to("/dev/zero")  # reading it would never end
    cases["zeros.png"] = "not a regular file"
    cases["missing.png"] = "no such file"
    (scratch / "file").write_bytes(b"x")
    cases["file/inside.png"] = "no such file"
    cases["n" * 300 + ".png"] = "cannot read (file name too long)"
    for name, problem in cases.items():
        path = scratch / name
        start = time.monotonic()
        with pytest.raises(ImageError) as raised:
            open_image(path)
        assert time.monotonic() - start < 1
        check_one_line(str(raised.value), str(path))
        assert problem in str(raised.value)
    with pytest.raises(ImageError, match="empty data"):
        open_image(b"", name="upload.png")
    with pytest.raises(ImageError, match=r"embedded null byte"):
        open_image("bad\0name.png")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, with a valid CRC
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def gif_header(w: int, h: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, w, h) + b"\x00\x02\x02\x44\x01\x00\x3b"
    return screen + frame


def bmp_header(w: int, h: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 12, 0, 0, 54) + info + b"\0" * 12


def tiff_header(w: int, h: int) -> bytes:
    tags = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
    tags += [(273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, h), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags) + b"\0" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\0" * 16


def jpeg_header(w: int, h: int) -> bytes:
    data = bytearray(ENCODINGS["JPEG-L"])
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def webp_header(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "WEBP", lossless=True)
    data = bytearray(buf.getvalue())
    at = data.index(b"VP8L") + 9
    bits = (w - 1) | ((h - 1) << 14) | (int.from_bytes(data[at : at + 4], "little") & ~((1 << 28) - 1))
    data[at : at + 4] = bits.to_bytes(4, "little")
    return bytes(data)


HEADERS = {
    "png": (png_header, 1 << 31),
    "gif": (gif_header, 1 << 16),
    "bmp": (bmp_header, 1 << 31),
    "tiff": (tiff_header, 1 << 32),
    "jpeg": (jpeg_header, 1 << 16),
    "webp": (webp_header, 1 << 14),
}


@pytest.mark.parametrize("kind", sorted(HEADERS))
@pytest.mark.parametrize("size", [(100_000, 100_000), (65_535, 65_535), (12_000, 12_000), (5000, 5000)])
def test_huge_header_is_refused_before_decoding(scratch, kind, size):
    make, bound = HEADERS[kind]
    w, h = (min(v, bound - 1) for v in size)
    path = scratch / f"huge-{w}x{h}.{kind}"
    path.write_bytes(make(w, h))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    with pytest.raises(ImageTooLargeError) as raised:  # the default limit applies when none is given
        open_image(path)
    assert time.monotonic() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 50_000  # KiB: nothing was decoded
    message = str(raised.value)
    check_one_line(message, str(path))
    assert re.search(r"is more than the limit of \d+ pixels$", message), message
    assert f"{DEFAULT_MAX_PIXELS}" in message or w * h > 2 * (Image.MAX_IMAGE_PIXELS or 0)


def test_pillows_own_bomb_limit_ends_as_the_projects_error():
    """A caller's limit above Pillow's still cannot decode a bomb, and the error is ours."""
    with pytest.raises(ImageTooLargeError, match=r"^upload\.png: refused, 400000000 pixels is more than"):
        open_image(png_header(20_000, 20_000), "upload.png", max_pixels=10**12)


@settings(FAST, max_examples=300)
@given(kind=st.sampled_from(sorted(HEADERS)), w=st.integers(1, 1 << 32), h=st.integers(1, 1 << 32))
@example(kind="png", w=1024, h=1025)
@example(kind="png", w=1024, h=1024)
def test_pixel_limit_is_exact(kind, w, h):
    """Refused exactly when the header claims more than max_pixels; otherwise decoded or corrupt."""
    make, bound = HEADERS[kind]
    assume(w < bound and h < bound)
    try:
        data = make(w, h)
    except struct.error:
        assume(False)
    try:
        open_image(data, "claim.img", SMALL_LIMIT)
    except ImageTooLargeError as exc:
        check_one_line(str(exc), "claim.img")
        assert w * h > SMALL_LIMIT, str(exc)
    except ImageError as exc:
        check_one_line(str(exc), "claim.img")
        assert w * h <= SMALL_LIMIT, str(exc)


# ---------------------------------------------------------------- labels files and names


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for rel in ("a.png", "b.png", "sub/c.png", "7041.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (20, 8), 255).save(root / rel)
    (root.parent / "secret.png").write_bytes(b"outside the data folder")
    return root


def check_items_or_clean_error(call, root: Path):
    try:
        items = call()
    except CaptchaCrnnError as exc:
        message = str(exc)
        assert message.isprintable() and len(message) < 1000, repr(message)
        return None
    assert items
    for it in items:
        # every path stays inside the folder, lexically: the labels file cannot point elsewhere
        assert os.path.normpath(it.path).startswith(str(root) + os.sep), it.path
        assert isinstance(it.label, str) and it.label.strip()
        it.label.encode("utf-8")
    return items


cell_st = st.sampled_from(
    [
        "a.png",
        "b.png",
        "sub/c.png",
        "./a.png",
        "sub//c.png",
        "../secret.png",
        "sub/../../secret.png",
        "/etc/passwd",
        "//server/share.png",
        "nope.png",
        "",
        " ",
        "label",
        "path",
        "abcd",
        "x3 mf",
        '"quoted, with comma"',
        '"multi\nline"',
        '"unterminated',
        "\ufeffa.png",
        "a\0b",
        "\u2028",
        "é",
        "x" * 140_000,  # over the csv module's field limit
        "..",
        ".",
    ]
) | st.text(max_size=12)
row_st = st.lists(cell_st, max_size=4)
text_st = st.builds(
    lambda rows, sep, end, bom: ("\ufeff" if bom else "") + end.join(sep.join(r) for r in rows),
    st.lists(row_st, max_size=8),
    st.sampled_from([",", "\t", ";"]),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.booleans(),
)


@settings(FAST, max_examples=300, suppress_health_check=list(HealthCheck))
@given(text=text_st, name=st.sampled_from(["labels.csv", "labels.tsv", "mine.txt"]))
def test_labels_file_contents(dataset, text, name):
    path = dataset / name
    path.write_text(text, encoding="utf-8")
    try:
        if name == "mine.txt":
            items = check_items_or_clean_error(lambda: collect(dataset, labels_file=path), dataset)
        else:
            items = check_items_or_clean_error(lambda: collect(dataset), dataset)
    finally:
        path.unlink()
    if items:
        assert len({os.path.normpath(it.path) for it in items}) == len(items)  # repeats are dropped


@settings(FAST, max_examples=100, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=300), head=st.sampled_from([b"", b"a.png,", b"\xef\xbb\xbf", b"a.png\t"]))
def test_labels_file_raw_bytes(dataset, data, head):
    path = dataset / "labels.csv"
    path.write_bytes(head + data)
    try:
        check_items_or_clean_error(lambda: collect(dataset), dataset)
    finally:
        path.unlink()


stem_st = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0") | st.sampled_from("\udc80\udcff"),
    max_size=12,
)


@settings(FAST, max_examples=100, suppress_health_check=list(HealthCheck))
@given(
    stems=st.lists(stem_st, min_size=1, max_size=6, unique=True),
    suffixes=st.lists(st.sampled_from(SUFFIXES), min_size=6, max_size=6),
    pattern=st.none() | st.text("ab01()[]{}*+?|^$\\.-_dwsDP<>=!:,", max_size=12),
)
@example(stems=["\x0b\x0b", " ", "ab"], suffixes=[".png"] * 6, pattern=None)  # found by atheris
@example(stems=["ab"], suffixes=[".png"] * 6, pattern="[[a]")  # re warns: found by atheris
def test_random_file_names_and_label_patterns(scratch, stems, suffixes, pattern):
    folder = Path(tempfile.mkdtemp(dir=scratch))
    try:
        names = {stem + suffix for stem, suffix in zip(stems, suffixes)} - {"", ".", ".."}
        for name in names:
            (folder / name).write_bytes(b"")  # collect lists names only: no pixels needed
        items = check_items_or_clean_error(lambda: collect(folder, label_pattern=pattern), folder)
        if items and pattern is None:
            for it in items:
                assert it.label == it.path.stem and it.path.name in names
    finally:
        shutil.rmtree(folder)


@pytest.mark.parametrize(
    "pattern", ["(", "a{4294967296}", "(" * 5000 + ")" * 5000, "(?P<x>a)(?P=y)", "[z-a]", "\\"]
)
def test_bad_label_patterns_are_one_clear_error(dataset, pattern):
    with pytest.raises(CaptchaCrnnError, match="is not a valid regular expression") as raised:
        collect(dataset, label_pattern=pattern)
    assert str(raised.value).isprintable()


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("../secret.png,abcd\n", r"labels\.csv:1: path '\.\./secret\.png' leads outside the folder"),
        ("a.png,abcd\nsub/../../secret.png,abcd\n", r"labels\.csv:2: path .* leads outside the folder"),
        ("{secret},abcd\n", r"labels\.csv:1: path .* is absolute"),
        ("a.png,abcd\n,abcd\n", r"labels\.csv:2: empty path"),
        ('a.png,"ab\ncd"\nb.png\n', r"labels\.csv:3: expected 'path,label'"),  # physical line numbers
        ("a.png,abcd\na.png,efgh\n", r"labels\.csv:2: 'a\.png' is labelled 'efgh' here but 'abcd' on line 1"),
        ("a.png," + "x" * 200_000 + "\n", r"labels\.csv:1: unreadable row \(field larger than field limit"),
        ("a.png\tabcd\nb.png\n", r"labels\.csv:2: expected 'path\\tlabel', got \['b\.png'\]"),
        ("a.png,abcd\n\0.png,x\n", r"labels\.csv:2: path '\\x00\.png' holds a NUL character"),
    ],
)
def test_labels_file_problems_name_file_and_line(dataset, rows, problem):
    secret = dataset.parent / "secret.png"
    path = dataset / "labels.csv"
    path.write_text(rows.format(secret=secret))
    try:
        with pytest.raises(LabelError, match=problem) as raised:
            collect(dataset)
    finally:
        path.unlink()
    assert str(raised.value).startswith(f"{path}:") and str(raised.value).isprintable()


def test_labels_file_skips_empty_labels_and_repeats_with_a_warning(dataset, caplog):
    path = dataset / "labels.csv"
    path.write_text("file,label\na.png,abcd\nb.png,\nsub/c.png, \na.png,abcd\n./a.png,abcd\n")
    try:
        items = collect(dataset)
    finally:
        path.unlink()
    assert [(it.path.name, it.label) for it in items] == [("a.png", "abcd")]
    assert "skipped 2 row(s)" in caplog.text and "empty label, e.g. line 3" in caplog.text
    assert "skipped 2 repeated row(s)" in caplog.text


def test_labels_file_that_is_not_text_or_not_a_file(dataset):
    path = dataset / "labels.csv"
    path.write_bytes(b"a.png,ab\xffcd\n")
    try:
        with pytest.raises(
            CaptchaCrnnError, match=r"labels\.csv: not a UTF-8 text file \(bad byte at offset 8\)"
        ):
            collect(dataset)
    finally:
        path.unlink()
    with pytest.raises(CaptchaCrnnError, match=r"sub: not a file"):
        collect(dataset, labels_file=dataset / "sub")
    with pytest.raises(CaptchaCrnnError, match=r"a\.png: not a folder"):
        collect(dataset / "a.png", labels_file=dataset / "sub")
    with pytest.raises(CaptchaCrnnError, match=r"cannot read \(file name too long\)"):
        collect(dataset / ("n" * 300))


def test_undecodable_file_names_are_skipped_with_a_warning(scratch, caplog):
    folder = scratch / "undecodable"
    folder.mkdir()
    (folder / "abcd.png").write_bytes(b"")
    (folder / "ab\udcffcd.png").write_bytes(b"")  # the name's bytes are not UTF-8
    assert [it.label for it in collect(folder)] == ["abcd"]
    assert "skipped 1 file(s) whose name is not valid UTF-8, e.g. ab\\udcffcd.png" in caplog.text
