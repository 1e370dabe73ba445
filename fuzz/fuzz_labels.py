"""atheris harness for the label parser: any labels.csv / labels.tsv contents, any file names and any
--label-pattern must end in labelled items whose paths stay inside the data folder, or the project's
CaptchaCrnnError with a one-line message.

    python fuzz/fuzz_labels.py -atheris_runs=20000 [CORPUS_DIR ...] [libFuzzer flags]
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from captcha_crnn.data.labels import collect
    from captcha_crnn.errors import CaptchaCrnnError

logging.getLogger("captcha_crnn").setLevel(logging.ERROR)  # skipped rows are warned about: expected here

SCRATCH = Path(tempfile.mkdtemp(prefix="fuzz-labels-"))
ROOT = SCRATCH / "data"
SUFFIXES = [".png", ".jpg", ".gif", ".txt", ""]


def reset_folder(names: list[str]) -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
    (ROOT / "sub").mkdir(parents=True)
    for name in ["a.png", "b.png", "sub/c.png", "7041.png", *names]:
        with contextlib.suppress(OSError, ValueError):  # a name this file system refuses
            (ROOT / name).write_bytes(b"")  # collect lists names only: no pixels needed


def check(call) -> None:
    try:
        items = call()
    except CaptchaCrnnError as exc:
        if not str(exc).isprintable():
            raise AssertionError(f"not a one-line message: {str(exc)!r}") from None
        return
    for it in items:
        if not os.path.normpath(it.path).startswith(f"{ROOT}{os.sep}"):
            raise AssertionError(f"{it.path} is outside {ROOT}")
        if not it.label.strip():
            raise AssertionError(f"empty label for {it.path}")
        it.label.encode("utf-8")


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    how = fdp.ConsumeIntInRange(0, 3)
    names = [fdp.ConsumeUnicodeNoSurrogates(12) + SUFFIXES[fdp.ConsumeIntInRange(0, 4)] for _ in range(3)]
    pattern = fdp.ConsumeUnicodeNoSurrogates(16) if how & 1 else None
    contents = fdp.ConsumeBytes(fdp.remaining_bytes())
    reset_folder(names)
    if how & 2:
        (ROOT / ("labels.tsv" if how & 1 else "labels.csv")).write_bytes(contents)
    check(lambda: collect(ROOT, label_pattern=pattern))
    check(lambda: collect(ROOT, label_pattern=pattern, recursive=True))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
