"""Synthetic captchas from the `captcha` library, reproducible per seed.

`captcha` draws its randomness from the `secrets` module, which cannot be seeded; while generating we
point the library at a seeded `random.Random` with the same three methods, so a seed gives the same images.

A `Style` says what to draw (charset, label length, image size, transparency, noise lines), as a record
that run.json and model metadata keep; `Style.generator()` picks the one Generator that draws it:
LibraryText (ImageCaptcha), LookText (`looks.draw`, with `Style(look=looks.Look(...))`), Arithmetic
(`Style(kind="arithmetic")`: expressions such as "12×4=") or General (`Style(recipe="general")`).
`generate()` writes a labelled folder; a `Renderer` draws one seeded stream in memory, which is what
streaming training data uses.
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
from typing import TYPE_CHECKING, Any, Protocol

from captcha_crnn.data.seeded import seeded_captcha
from captcha_crnn.data.tokenizer import int_range
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
    # the general model learns from; width and height then only bound the input size.
    recipe: str | None = None
    # "arithmetic": expressions such as "12×4=" or "3+8=?" (arithmetic.expression), drawn in the `look`,
    # else in arithmetic_look() (not by ImageCaptcha).
    kind: str = "text"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CaptchaCrnnError(f"unknown kind {self.kind!r}; kinds are: {', '.join(KINDS)}")
        if self.kind == "arithmetic" and self.recipe is not None:
            raise CaptchaCrnnError(
                "kind 'arithmetic' and a recipe do not go together: both choose the labels"
            )
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

    def generator(self) -> Generator:
        """What draws this style. Its `charset` and `length` are those of the labels it draws, which for
        a recipe or kind "arithmetic" are their own, not the fields here: check training against them."""
        if self.recipe == "general":
            return General()
        if self.kind == "arithmetic":
            return Arithmetic(self)
        if self.look is not None:
            return LookText(self, self.look)
        return LibraryText(self)

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


class Generator(Protocol):
    """One kind of captcha: the labels it draws and how it draws them, every choice from the `rng` given."""

    charset: str  # every character label() may draw: training checks its tokenizer against it
    length: tuple[int, int]  # the fewest and most characters of a label

    def label(self, rng: random.Random) -> str: ...

    def draw(self, label: str, rng: random.Random) -> Image.Image: ...


class LibraryText:
    """Random strings of the style's characters, drawn by the `captcha` library's ImageCaptcha."""

    def __init__(self, style: Style) -> None:
        self.style, self.charset, self.length = style, style.charset, style.length
        self._writers: dict[int, Any] = {}  # one ImageCaptcha per width: they cache their fonts

    def label(self, rng: random.Random) -> str:
        return "".join(rng.choice(self.charset) for _ in range(rng.randint(*self.length)))

    def draw(self, label: str, rng: random.Random) -> Image.Image:
        style = self.style
        width = rng.randint(*style.width)
        writer = self._writers.get(width)
        if writer is None:
            writer = self._writers[width] = _make_writer(width, style.height, style.transparent)
        with seeded_captcha(rng):
            image = writer.generate_image(label)
        return _noise_lines(image, style, rng)


class LookText(LibraryText):
    """Random strings (or, given other labels, those) drawn by looks.draw in one Look."""

    def __init__(self, style: Style, look: Look) -> None:
        super().__init__(style)
        self.look = look

    def draw(self, label: str, rng: random.Random) -> Image.Image:
        from captcha_crnn.data import looks

        image = looks.draw(self.look, label, rng.randint(*self.style.width), self.style.height, rng)
        return _noise_lines(image, self.style, rng)


class Arithmetic(LookText):
    """Expressions such as "12×4=" (arithmetic.expression), in the style's Look or arithmetic_look()."""

    def __init__(self, style: Style) -> None:
        from captcha_crnn import arithmetic

        super().__init__(style, style.look or arithmetic_look(style.transparent))
        self.charset, self.length = arithmetic.CHARSET, arithmetic.LENGTH

    def label(self, rng: random.Random) -> str:
        from captcha_crnn import arithmetic

        return arithmetic.expression(rng)


class General:
    """The general model's mixture (data/general.py): a random look, size, charset and length per image."""

    def __init__(self) -> None:
        from captcha_crnn.data import general

        self.charset, self.length = general.CHARSET, (1, len(general.LENGTH_WEIGHTS))

    def label(self, rng: random.Random) -> str:
        from captcha_crnn.data import general

        return general.label(rng)

    def draw(self, label: str, rng: random.Random) -> Image.Image:
        from captcha_crnn.data import general

        return general.draw(label, rng)


def _noise_lines(image: Image.Image, style: Style, rng: random.Random) -> Image.Image:
    """`style.noise_lines` straight lines in random dark colours across `image`, in place."""
    from PIL import ImageDraw

    lines = rng.randint(*style.noise_lines)
    if lines:
        draw = ImageDraw.Draw(image)
        for _ in range(lines):
            colour = (*(rng.randrange(0, 200) for _ in range(3)), 255)
            points = [(rng.randrange(image.width), rng.randrange(image.height)) for _ in range(2)]
            draw.line(points, fill=colour[: len(image.getbands())], width=rng.randint(1, 3))
    return image


class Renderer:
    """Draws labelled captchas of one style from one seeded random stream."""

    def __init__(self, style: Style, seed: int) -> None:
        self.style = style
        self.generator = style.generator()
        self.rng = random.Random(seed)

    def sample(self) -> tuple[str, Image.Image]:
        label = self.generator.label(self.rng)
        return label, self.generator.draw(label, self.rng)


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
        low, high = int_range(text)
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
    `force` (and for a labels file even with it: a labels.csv would be replaced, and beside a labels.tsv
    the new labels.csv would be read first, the user's labels then unused)."""
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
    labels = [name for name in present if name in DEFAULT_LABEL_FILES]
    if force and labels:
        raise CaptchaCrnnError(
            f"{where}: already has a {labels[0]}, which --force never replaces or hides; choose a new folder"
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
