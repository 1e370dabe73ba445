"""Synthetic captchas from the `captcha` library, reproducible per seed.

`captcha` draws its randomness from the `secrets` module, which cannot be seeded; while generating we
point the library at a seeded `random.Random` with the same three methods, so a seed gives the same images.

A `Style` says what to draw (charset, label length, image size, transparency, noise lines). `generate()`
writes a labelled folder; `render()` makes one image in memory, which is what streaming training data uses.
With `Style(look=looks.Look(...))` images are drawn by `looks.draw` (Pillow, many looks) instead.
`Style(kind="arithmetic")` draws expressions such as "12×4=" (arithmetic.py) rather than random strings.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from captcha_crnn.data.seeded import seeded_captcha
from captcha_crnn.errors import CaptchaCrnnError, one_line
from captcha_crnn.files import check_writable_folder

if TYPE_CHECKING:
    from PIL import Image

    from captcha_crnn.data.looks import Look

log = logging.getLogger("captcha_crnn")

DIGITS = "0123456789"
KINDS = ("text", "arithmetic")
MAX_SIDE = 4096  # pixels a side: images beyond it are over the default pixel limit that train skips
SAFE_NAME = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class Style:
    """What generated captchas look like. Widths are drawn per image from `width` (low, high)."""

    charset: str = DIGITS
    length: tuple[int, int] = (4, 4)
    width: tuple[int, int] = (160, 160)
    height: int = 60
    transparent: bool = False  # colour text on a transparent background (RGBA) instead of a light one
    noise_lines: tuple[int, int] = (0, 0)  # extra straight lines across the text, drawn per image
    look: Look | None = None  # draw with looks.draw (which then decides transparency), not ImageCaptcha
    # "general": each image in a random look, size, charset and length (data/general.py), the mixture
    # the general model learns from; charset, length, width and height then only bound the input size.
    recipe: str | None = None
    # "arithmetic": expressions such as "12×4=" or "3+8=?" (arithmetic.expression); charset and length
    # are then the expressions' own, whatever was given, and without a `look` they are drawn in
    # arithmetic_look(), not by ImageCaptcha.
    kind: str = "text"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CaptchaCrnnError(f"unknown kind {self.kind!r}; kinds are: {', '.join(KINDS)}")
        if self.kind == "arithmetic":
            from captcha_crnn import arithmetic

            if self.recipe is not None:
                raise CaptchaCrnnError(
                    "kind 'arithmetic' and a recipe do not go together: both choose the labels"
                )
            # Set here, not left to the caller: training checks its charset and the frames its longest
            # label needs against these fields, so they must describe what label() draws.
            object.__setattr__(self, "charset", arithmetic.CHARSET)
            object.__setattr__(self, "length", arithmetic.LENGTH)
        if not self.charset or any(ch.isspace() for ch in self.charset):
            raise CaptchaCrnnError(f"--charset must be non-empty and without spaces, got {self.charset!r}")
        if not 1 <= self.length[0] <= self.length[1]:
            raise CaptchaCrnnError(f"label length must be 1 or more, low <= high, got {self.length}")
        if not 16 <= self.width[0] <= self.width[1] or self.height < 16:
            raise CaptchaCrnnError(f"image size must be at least 16x16, got {self.width} x {self.height}")
        if self.width[1] > MAX_SIDE or self.height > MAX_SIDE:  # a typo must not fill the memory
            raise CaptchaCrnnError(
                f"image size must be at most {MAX_SIDE}x{MAX_SIDE}, got {self.width} x {self.height}"
            )
        if not 0 <= self.noise_lines[0] <= self.noise_lines[1]:
            raise CaptchaCrnnError(f"--noise-lines must be 0 or more, low <= high, got {self.noise_lines}")
        if self.recipe not in (None, "general"):
            raise CaptchaCrnnError(f"unknown recipe {self.recipe!r}; the one recipe is 'general'")
        if self.recipe == "general":  # the recipe draws its own labels: the checks must see their range
            from captcha_crnn.data import general

            object.__setattr__(self, "charset", general.CHARSET)
            object.__setattr__(self, "length", (1, len(general.LENGTH_WEIGHTS)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Style:
        """The inverse of dataclasses.asdict, also after a JSON round trip (lists become tuples)."""
        from captcha_crnn.data.looks import Look

        extra = set(data) - {f.name for f in fields(cls)}
        if extra:
            raise CaptchaCrnnError(f"unknown Style fields: {', '.join(sorted(extra))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        if values.get("look") is not None:
            values["look"] = Look.from_dict(values["look"])
        return cls(**values)


def _make_writer(width: int, height: int, transparent: bool):  # type: ignore[no-untyped-def]
    from captcha.image import ImageCaptcha
    from PIL import Image

    if not transparent:
        return ImageCaptcha(width=width, height=height)

    class TransparentCaptcha(ImageCaptcha):
        """ImageCaptcha drawing on a transparent RGBA canvas: the library pastes glyphs with a mask, so
        only the canvas mode has to change."""

        def create_captcha_image(self, chars, color, background):  # type: ignore[no-untyped-def]
            import captcha.image as module

            made_by_library = module.createImage
            module.createImage = lambda mode, size, color=0: Image.new("RGBA", size, (0, 0, 0, 0))
            try:
                return super().create_captcha_image(chars, color, background)
            finally:
                module.createImage = made_by_library

    return TransparentCaptcha(width=width, height=height)


class Renderer:
    """Draws labelled captchas of one style from one seeded random stream."""

    def __init__(self, style: Style, seed: int) -> None:
        self.style = style
        self.rng = random.Random(seed)
        self._writers: dict[int, object] = {}
        arithmetic = style.kind == "arithmetic" and style.look is None
        self.look = arithmetic_look(style.transparent) if arithmetic else style.look

    def label(self) -> str:
        if self.style.recipe:
            from captcha_crnn.data import general

            return general.label(self.rng)
        if self.style.kind == "arithmetic":
            from captcha_crnn import arithmetic

            return arithmetic.expression(self.rng)
        return "".join(
            self.rng.choice(self.style.charset) for _ in range(self.rng.randint(*self.style.length))
        )

    def render(self, label: str) -> Image.Image:
        from PIL import ImageDraw

        style = self.style
        if style.recipe:
            from captcha_crnn.data import general

            return general.draw(label, self.rng)
        width = self.rng.randint(*style.width)
        if self.look is not None:
            from captcha_crnn.data import looks

            image = looks.draw(self.look, label, width, style.height, self.rng)
        else:
            writer = self._writers.get(width)
            if writer is None:
                writer = self._writers[width] = _make_writer(width, style.height, style.transparent)
            with seeded_captcha(self.rng):
                image = writer.generate_image(label)  # type: ignore[attr-defined]
        lines = self.rng.randint(*style.noise_lines)
        if lines:
            draw = ImageDraw.Draw(image)
            for _ in range(lines):
                colour = (*(self.rng.randrange(0, 200) for _ in range(3)), 255)
                points = [(self.rng.randrange(width), self.rng.randrange(style.height)) for _ in range(2)]
                draw.line(points, fill=colour[: len(image.getbands())], width=self.rng.randint(1, 3))
        return image

    def sample(self) -> tuple[str, Image.Image]:
        label = self.label()
        return label, self.render(label)


def arithmetic_look(transparent: bool = False) -> Look:
    """How arithmetic captchas are drawn unless a Look is given: DroidSansMono (which has × and ÷) on a
    shared baseline, turned at most 12 degrees, light noise. Not ImageCaptcha: it stretches every glyph to
    the full line height (a minus becomes a block) and turns glyphs up to 30 degrees, where + and × take
    the same shape."""
    from captcha_crnn.data.looks import Look

    return Look(
        fonts=("droid-mono",),
        background="transparent" if transparent else "light",
        size=(0.45, 0.6),
        rotation=12,
        baseline=0.06,
        spacing=(0.0, 0.3),
        warp=0.03,
        blur=0.6,
        strike_lines=(0, 1),
        dots=0.02,
    )


def parse_range(text: str, what: str) -> tuple[int, int]:
    """'4' -> (4, 4); '4-6' -> (4, 6)."""
    try:
        lo, _, hi = text.partition("-")
        low, high = int(lo), int(hi or lo)
    except ValueError:
        raise CaptchaCrnnError(f"{what} must look like 4 or 4-6, got {text!r}") from None
    if not 0 <= low <= high:
        raise CaptchaCrnnError(f"{what} must be a number or low-high with low <= high, got {text!r}")
    return low, high


def parse_length(text: str) -> tuple[int, int]:
    low, high = parse_range(text, "--length")
    if low < 1:
        raise CaptchaCrnnError(f"--length must be 1 or more, got {text!r}")
    return low, high


def parse_size(text: str) -> tuple[tuple[int, int], int]:
    """'160x60' -> ((160, 160), 60); '200-550x80' -> ((200, 550), 80): a width range, drawn per image."""
    w, sep, h = text.lower().partition("x")
    try:
        width, height = parse_range(w, "--size width"), int(h)
    except (ValueError, CaptchaCrnnError):
        raise CaptchaCrnnError(f"--size must look like 160x60 or 200-550x80, got {text!r}") from None
    if not sep or width[0] < 16 or height < 16 or width[1] > MAX_SIDE or height > MAX_SIDE:
        raise CaptchaCrnnError(
            f"--size must be from 16x16 to {MAX_SIDE}x{MAX_SIDE} and look like 160x60, got {text!r}"
        )
    return width, height


def generate(out: Path, count: int, style: Style | None = None, seed: int = 0, force: bool = False) -> Path:
    """Write `count` captchas into `out` plus `labels.csv`, which `train` reads with no extra flags.

    Files are named `000042_7041.png` (index, then the label when it is plain ASCII letters and digits),
    so names stay unique even when labels repeat. Returns the labels file's path.

    `out` must not hold images or a labels file yet: new images mixed into old ones would get a labels.csv
    listing only the new ones. `force` adds them beside what is there, but never replaces a file: the set
    is drawn into a hidden folder inside `out` and moved in only when none of its names is taken.
    """
    style = style or Style()
    if count < 1:
        raise CaptchaCrnnError(f"--count must be at least 1, got {count}")
    out = Path(out)
    present = _check_out(out, force)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".generate-", dir=out))
    try:
        names = _draw(staging, count, style, seed)
        taken = [name for name in names if os.path.lexists(out / name)]
        if taken:
            raise CaptchaCrnnError(
                f"{one_line(out)}: {len(taken)} of the new file names already exist there (e.g. "
                f"{one_line(taken[0])}) and --force never replaces a file; choose a new folder"
            )
        for name in names:  # labels.csv last
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
    if present:
        log.warning(
            "%s already held %d image or labels file(s); its labels.csv lists only the %d new images",
            one_line(out),
            len(present),
            count,
        )
    return out / "labels.csv"


def _check_out(out: Path, force: bool) -> list[str]:
    """The images and labels files already in `out`; an error for a file, or for any of them without
    `force` (and for a labels.csv even with it)."""
    from captcha_crnn.data.images import IMAGE_SUFFIXES
    from captcha_crnn.data.labels import DEFAULT_LABEL_FILES

    where = one_line(out)
    try:
        if not out.exists():
            check_writable_folder(out)
            return []
        if not out.is_dir():
            raise CaptchaCrnnError(f"{where}: not a folder; generate writes a folder of images")
        present = sorted(
            p.name
            for p in out.iterdir()
            if p.name in DEFAULT_LABEL_FILES or p.suffix.lower() in IMAGE_SUFFIXES
        )
    except OSError as exc:
        raise CaptchaCrnnError(f"{where}: cannot read ({one_line(exc.strerror or exc, 200)})") from None
    if force and "labels.csv" in present:
        raise CaptchaCrnnError(
            f"{where}: already has a labels.csv, which --force never replaces; choose a new folder"
        )
    if present and not force:
        raise CaptchaCrnnError(
            f"{where}: already holds {len(present)} image or labels file(s) (e.g. {one_line(present[0])}); "
            "choose a new folder, or pass --force to add the new images beside them"
        )
    return present


def _draw(folder: Path, count: int, style: Style, seed: int) -> list[str]:
    """Draw the set into `folder`, images then labels.csv; returns their file names, labels.csv last."""
    renderer = Renderer(style, seed)
    digits = len(str(count - 1))
    rows = []
    for i in range(count):
        label, image = renderer.sample()
        name = f"{i:0{digits}d}_{label}.png" if SAFE_NAME.match(label) else f"{i:0{digits}d}.png"
        image.save(folder / name)
        rows.append((name, label))
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label"])
        writer.writerows(rows)
    return [name for name, _ in rows] + ["labels.csv"]
