"""atheris harness for the image loader: any bytes, as data or as a file, must end in a decoded image or
the project's ImageError with a one-line message that starts with the file's name.

    python fuzz/fuzz_images.py -atheris_runs=20000 [CORPUS_DIR ...] [libFuzzer flags]

It always starts from small valid images in a dozen formats, plus the files of any CORPUS_DIR given
(where it then saves the inputs that reach new code).
"""

from __future__ import annotations

import io
import sys
import tempfile
import warnings
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports():
    from PIL import Image

    Image.init()  # import every format plugin here, so that their Python code is instrumented too
    from captcha_crnn.data.images import IMAGE_FORMATS, InputPolicy, load_for_model
    from captcha_crnn.errors import ImageError

POLICY = InputPolicy(height=32, min_width=32, max_width=128)
LIMIT = 1 << 20  # pixels: keeps headers that claim a few megapixels cheap
NAME = "fuzz.img"
SCRATCH = Path(tempfile.mkdtemp(prefix="fuzz-images-"))


def seed_corpus() -> Path:
    folder = SCRATCH / "corpus"
    folder.mkdir()
    base = Image.fromarray(np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8))
    for fmt, modes in {
        "PNG": ["RGB", "RGBA", "L", "P", "I;16"],
        "JPEG": ["RGB", "L", "CMYK"],
        "GIF": ["P"],
        "BMP": ["RGB", "P"],
        "WEBP": ["RGB", "RGBA"],
        "TIFF": ["RGB", "L", "F", "LAB", "YCbCr"],
        "ICO": ["RGBA"],
        "PPM": ["RGB"],
        "TGA": ["RGB"],
    }.items():
        for mode in modes:
            buf = io.BytesIO()
            base.convert(mode).save(buf, fmt)
            (folder / f"{fmt}-{mode.replace(';', '')}").write_bytes(b"\0" + buf.getvalue())
    return folder


def check(call, name: str) -> None:
    try:
        call()
    except ImageError as exc:
        message = str(exc)
        if not (message.isprintable() and message.startswith(f"{name}: ")):
            raise AssertionError(f"not a one-line message naming {name!r}: {message!r}") from None


def test_one_input(data: bytes) -> None:
    if not data:
        return
    how, data = data[0], data[1:]  # the first byte picks the way in, the rest is the file
    formats = IMAGE_FORMATS if how & 1 else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning that leaks out of the loader is a finding too
        if how & 2:
            path = SCRATCH / ("sample.png" if how & 4 else "sample.txt")
            path.write_bytes(data)
            check(lambda: load_for_model(path, POLICY, max_pixels=LIMIT, formats=formats), str(path))
        else:
            check(lambda: load_for_model(data, POLICY, NAME, LIMIT, formats), NAME)


def main() -> None:
    argv = list(sys.argv)
    if not any(Path(arg).is_file() for arg in argv[1:]):  # files given: replay them, no fuzzing
        argv.append(str(seed_corpus()))  # new inputs go to the first folder given, if any
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
