"""Synthetic captchas from the `captcha` library, reproducible per seed.

`captcha` draws its randomness from the `secrets` module, which cannot be seeded; while generating we
point the library at a seeded `random.Random` with the same three methods, so a seed gives the same images.
"""

from __future__ import annotations

import contextlib
import csv
import random
import re
from collections.abc import Iterator
from pathlib import Path

from captcha_crnn.errors import CaptchaCrnnError

DIGITS = "0123456789"
SAFE_NAME = re.compile(r"^[A-Za-z0-9]+$")


class _SeededSecrets:
    """The subset of the `secrets` module that captcha.image uses, backed by random.Random."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def randbelow(self, n: int) -> int:
        return self._rng.randrange(n)

    def randbits(self, k: int) -> int:
        return self._rng.getrandbits(k)

    def choice(self, seq):  # type: ignore[no-untyped-def]
        return self._rng.choice(seq)


@contextlib.contextmanager
def _seeded_captcha(rng: random.Random) -> Iterator[None]:
    import captcha.image

    original = captcha.image.secrets
    captcha.image.secrets = _SeededSecrets(rng)  # type: ignore[assignment]
    try:
        yield
    finally:
        captcha.image.secrets = original


def parse_length(text: str) -> tuple[int, int]:
    """'4' -> (4, 4); '4-6' -> (4, 6)."""
    try:
        lo, _, hi = text.partition("-")
        low, high = int(lo), int(hi or lo)
    except ValueError:
        raise CaptchaCrnnError(f"--length must look like 4 or 4-6, got {text!r}") from None
    if not 1 <= low <= high:
        raise CaptchaCrnnError(f"--length must be 1 or more, low <= high, got {text!r}")
    return low, high


def parse_size(text: str) -> tuple[int, int]:
    """'160x60' -> (160, 60)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CaptchaCrnnError(f"--size must look like 160x60, got {text!r}") from None
    if w < 16 or h < 16:
        raise CaptchaCrnnError(f"--size must be at least 16x16, got {text!r}")
    return w, h


def generate(
    out: Path,
    count: int,
    charset: str = DIGITS,
    length: tuple[int, int] = (4, 4),
    size: tuple[int, int] = (160, 60),
    seed: int = 0,
) -> Path:
    """Write `count` captchas into `out` plus `labels.csv`, which `train` reads with no extra flags.

    Files are named `000042_7041.png` (index, then the label when it is plain ASCII letters and digits),
    so names stay unique even when labels repeat. Returns the labels file's path.
    """
    from captcha.image import ImageCaptcha

    if count < 1:
        raise CaptchaCrnnError(f"--count must be at least 1, got {count}")
    if not charset or any(ch.isspace() for ch in charset):
        raise CaptchaCrnnError(f"--charset must be non-empty and without spaces, got {charset!r}")
    out = Path(out)
    labels_path = out / "labels.csv"
    if labels_path.exists():
        raise CaptchaCrnnError(f"{out}: already holds a generated set (labels.csv); choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    writer_image = ImageCaptcha(width=size[0], height=size[1])
    digits = len(str(count - 1))
    rows = []
    with _seeded_captcha(rng):
        for i in range(count):
            label = "".join(rng.choice(charset) for _ in range(rng.randint(*length)))
            name = f"{i:0{digits}d}_{label}.png" if SAFE_NAME.match(label) else f"{i:0{digits}d}.png"
            writer_image.generate_image(label).save(out / name)
            rows.append((name, label))
    with labels_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label"])
        writer.writerows(rows)
    return labels_path
