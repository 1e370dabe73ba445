"""Captchas drawn with Pillow in many looks: fonts, backgrounds, colour schemes, strokes, dots and warps.

A `Look` says how to draw; `draw()` makes one image of a label. All randomness comes from the `rng`
passed in (numpy draws from a Generator seeded by it), so the same seed gives the same pixels.
`synthetic.Style(look=Look(...))` renders with this module instead of the `captcha` library.

Fonts are named: "droid-mono" is DroidSansMono.ttf, bundled with the `captcha` package; the dejavu-*
names come from the Debian package fonts-dejavu-core (sans, sans-bold, serif, serif-bold, mono,
mono-bold) or fonts-dejavu-extra (the others); the hershey-* names are OpenCV's stroke fonts, drawn by
cv2.putText (pip install opencv-python-headless).
"""

from __future__ import annotations

import colorsys
import functools
import math
import random
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from captcha_crnn.errors import CaptchaCrnnError, one_line

Colour = tuple[int, int, int]
FONT_DIR = Path("/usr/share/fonts/truetype")
_CORE, _EXTRA = "fonts-dejavu-core", "fonts-dejavu-extra"
FONTS: dict[str, tuple[str, str]] = {  # name -> (file under FONT_DIR, Debian package)
    "dejavu-sans": ("dejavu/DejaVuSans.ttf", _CORE),
    "dejavu-sans-bold": ("dejavu/DejaVuSans-Bold.ttf", _CORE),
    "dejavu-serif": ("dejavu/DejaVuSerif.ttf", _CORE),
    "dejavu-serif-bold": ("dejavu/DejaVuSerif-Bold.ttf", _CORE),
    "dejavu-mono": ("dejavu/DejaVuSansMono.ttf", _CORE),
    "dejavu-mono-bold": ("dejavu/DejaVuSansMono-Bold.ttf", _CORE),
    "dejavu-sans-oblique": ("dejavu/DejaVuSans-Oblique.ttf", _EXTRA),
    "dejavu-serif-italic": ("dejavu/DejaVuSerif-Italic.ttf", _EXTRA),
    "dejavu-condensed": ("dejavu/DejaVuSansCondensed.ttf", _EXTRA),
    "dejavu-condensed-bold": ("dejavu/DejaVuSansCondensed-Bold.ttf", _EXTRA),
    "dejavu-serif-condensed": ("dejavu/DejaVuSerifCondensed.ttf", _EXTRA),
}
# OpenCV's Hershey stroke fonts (cv2.putText), in which many home-made captchas are drawn: name -> face
# number. Thin faces are drawn in aliased strokes 1/24 of the size wide, bold ones 1/9, antialiased
# (aliased too in a Look with `aliased`).
# They draw printable ASCII only (cv2.putText draws any other character as question marks).
_HERSHEY_FACES = {"simplex": 0, "plain": 1, "duplex": 2, "complex": 3, "triplex": 4, "small": 5}
HERSHEY: dict[str, int] = {
    f"hershey-{name}{italic}{bold}": face + (16 if italic else 0)
    for name, face in _HERSHEY_FACES.items()
    for italic in ("", "-italic")
    for bold in ("", "-bold")
}
HERSHEY_PX = 30  # cv2's font scale 1 draws about as large as a 30 px TrueType font
BACKGROUNDS = ("light", "white", "dark", "mid", "gradient", "texture", "transparent", "fade", "pattern")
COLOURS = ("dark", "random", "multi", "equiluminant", "light", "pastel")


@dataclass(frozen=True)
class Look:
    """How captchas are drawn. Ranges are (low, high), drawn per image or per glyph. For case-sensitive
    charsets keep `size` narrow: glyphs share a baseline, so o and O differ by size only."""

    fonts: tuple[str, ...] = ("droid-mono",)  # names or absolute .ttf/.otf paths; one drawn per glyph
    # one of BACKGROUNDS; "mid": a solid colour of middling brightness; "fade": white to light grey;
    # "pattern": light stripes, a grid or checks in two colours
    background: str = "light"
    colours: str = "dark"  # one of COLOURS; "pastel": light, soft hues, little contrast with white
    size: tuple[float, float] = (0.55, 0.8)  # capital-letter height / image height, per glyph
    rotation: float = 0.0  # max degrees either way, per glyph
    baseline: float = 0.0  # max vertical jitter per glyph, fraction of image height
    spacing: tuple[float, float] = (0.05, 0.25)  # gap / glyph width; negative: touching glyphs
    warp: float = 0.0  # amplitude of a sine warp of the text, fraction of image height
    blur: float = 0.0  # max Gaussian blur radius, px
    strike_lines: tuple[int, int] = (0, 0)  # straight lines or curves across the text, glyph-coloured
    line_width: tuple[int, int] = (1, 2)  # px, for strike lines and arcs
    arcs: tuple[int, int] = (0, 0)  # elliptic arcs around the text, glyph-coloured
    dots: float = 0.0  # noise dots, as a fraction of all pixels
    outline: float = 0.0  # hollow glyphs: the chance that a glyph is hollow (True: all)
    shadow: bool = False  # a dark offset copy behind each glyph
    mixed_case: bool = False  # each letter drawn in upper or lower case at random; the label keeps its own
    segments: tuple[int, int] = (0, 0)  # short thin lines in random colours over the background
    jpeg: int | None = None  # the JPEG quality the image is saved at and read back with: its artefacts
    # Crop the image to its text (glyphs and lines), leaving up to this much of the text's height on
    # each side: captchas cropped tight, whose glyphs touch the edges. None: the full image.
    crop: float | None = None
    # Glyphs with hard edges, no antialiasing: TrueType drawn 1-bit, Hershey strokes drawn LINE_8, rotated
    # and scaled by nearest neighbour, as many home-made captchas are (cv2.putText's default line type).
    # `warp` and `blur` soften them again, as they soften any glyph.
    aliased: bool = False

    def __post_init__(self) -> None:
        known = ("droid-mono", *FONTS, *HERSHEY)
        unknown = [f for f in self.fonts if f not in known and not _font_file(f)]
        if isinstance(self.fonts, str) or not self.fonts or unknown:
            hershey = "hershey-{" + ",".join(_HERSHEY_FACES) + "}[-italic][-bold]"
            names = ", ".join(["droid-mono", *FONTS, hershey])
            raise CaptchaCrnnError(f"unknown font {unknown or self.fonts!r}; fonts are: {names}")
        amounts = (self.strike_lines[0], self.arcs[0], self.rotation, self.baseline, self.warp, self.blur)
        checks = {
            f"background is one of {', '.join(BACKGROUNDS)}": self.background in BACKGROUNDS,
            f"colours is one of {', '.join(COLOURS)}": self.colours in COLOURS,
            "equiluminant glyphs have a coloured background": self.colours != "equiluminant"
            or self.background not in ("white", "transparent"),
            "0.2 <= size <= 1": 0.2 <= self.size[0] <= self.size[1] <= 1,
            "spacing >= -0.35 (more overlap hides glyphs)": -0.35 <= self.spacing[0] <= self.spacing[1],
            "ranges are (low, high), low <= high": all(
                lo <= hi for lo, hi in (self.strike_lines, self.arcs, self.line_width)
            ),
            "crop is None or >= 0": self.crop is None or self.crop >= 0,
            "0 <= outline <= 1": 0 <= self.outline <= 1,
            "0 <= segments low <= high": 0 <= self.segments[0] <= self.segments[1],
            "jpeg is None or a quality of 1-95": self.jpeg is None or 1 <= self.jpeg <= 95,
            "jpeg is not for a transparent background": self.jpeg is None or not self.transparent,
            "amounts are >= 0, line_width >= 1, dots <= 0.5": min(amounts) >= 0
            and self.line_width[0] >= 1
            and 0 <= self.dots <= 0.5,
        }
        failed = [check for check, ok in checks.items() if not ok]
        if failed:
            raise CaptchaCrnnError(f"bad Look: make sure that {'; '.join(failed)}")

    @property
    def transparent(self) -> bool:
        return self.background == "transparent"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Look:
        """The inverse of dataclasses.asdict, also after a JSON round trip (lists become tuples)."""
        extra = set(data) - {f.name for f in fields(cls)}
        if extra:
            raise CaptchaCrnnError(f"unknown Look fields: {', '.join(sorted(extra))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _font_file(name: str) -> bool:
    """A font given by its file's absolute path (.ttf or .otf) rather than by name."""
    return Path(name).is_absolute() and Path(name).suffix.lower() in (".ttf", ".otf")


@functools.cache
def font_path(name: str) -> str:
    """The TTF file of a font name; CaptchaCrnnError naming the package to install when it is missing."""
    if _font_file(name):
        if not Path(name).is_file():
            raise CaptchaCrnnError(f"font file {name} does not exist")
        return name
    if name in HERSHEY:  # drawn by OpenCV, no file: the name stands for the face
        _check_opencv(name)
        return name
    if name == "droid-mono":
        try:
            return str(resources.files("captcha") / "data" / "DroidSansMono.ttf")
        except ModuleNotFoundError:
            raise CaptchaCrnnError(
                "font droid-mono comes with the captcha package: pip install captcha"
            ) from None
    file, package = FONTS[name]
    if not (FONT_DIR / file).is_file():
        raise CaptchaCrnnError(f"font {name} needs {FONT_DIR / file}: install the Debian package {package}")
    return str(FONT_DIR / file)


def _check_opencv(name: str) -> None:
    """OpenCV 4 must be importable: OpenCV 5 draws other fonts under the Hershey names."""
    install = "pip install 'opencv-python-headless<5'"
    try:
        import cv2
    except ImportError as exc:  # not installed, or a build that needs libGL
        raise CaptchaCrnnError(f"font {name} is drawn by OpenCV 4 ({one_line(exc, 80)}): {install}") from None
    if not cv2.__version__.startswith("4."):
        raise CaptchaCrnnError(
            f"font {name} is drawn by OpenCV 4 (found OpenCV {cv2.__version__}): {install}"
        )


@functools.lru_cache(maxsize=1024)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@functools.cache
def _cap_height(path: str) -> float:
    """The height of a capital H, per px of font size."""
    if path in HERSHEY:
        return -_hershey_mask("H", path, 100, False)[1] / 100
    return -_font(path, 100).getbbox("H", anchor="ls")[1] / 100


def luminance(colour: Any) -> float:
    """Brightness as Pillow's RGB -> "L" conversion computes it (0-255)."""
    return (299 * colour[0] + 587 * colour[1] + 114 * colour[2]) / 1000


def _hsv(h: float, s: float, v: float) -> Colour:
    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))  # type: ignore[return-value]


def equiluminant_step(low: np.ndarray, high: np.ndarray, rng: random.Random) -> np.ndarray:
    """An RGB step that changes hue but not brightness (its luminance is 0): of 6 random hues, towards
    the one that allows the largest step keeping background pixels from `low` to `high` within 0-255."""
    best = np.zeros(3)
    for _ in range(6):
        pure = np.array(_hsv(rng.random(), 1.0, 1.0), dtype=np.float64)
        step = pure - luminance(pure)
        step *= min((255 - hi) / d if d > 0 else lo / -d for d, lo, hi in zip(step, low, high) if d)
        best = step if np.abs(step).sum() > np.abs(best).sum() else best
    return best


def _glyph_colour(mode: str, local: Any, i: int, hue: float, rng: random.Random) -> Colour:
    """Glyph i's colour; "random" and "multi" contrast with `local`, the mean background under it
    (transparent counts as white: loaders composite on white). "equiluminant" is drawn in layers()."""
    if mode in ("dark", "light"):
        return tuple(rng.randint(0, 90) if mode == "dark" else rng.randint(190, 255) for _ in range(3))  # type: ignore[return-value]
    if mode == "pastel":
        return _hsv(rng.random(), rng.uniform(0.35, 0.6), rng.uniform(0.7, 0.92))
    for _ in range(20):
        if mode == "random":
            colour: Colour = tuple(rng.randint(0, 255) for _ in range(3))  # type: ignore[assignment]
        else:  # multi: saturated, hues spread along the label
            colour = _hsv(
                hue + 0.382 * i + rng.uniform(-0.05, 0.05), rng.uniform(0.75, 1), rng.uniform(0.5, 1)
            )
        if abs(luminance(colour) - luminance(local)) >= 75:
            return colour
    return (0, 0, 0) if luminance(local) > 128 else (255, 255, 255)


def _background(kind: str, width: int, height: int, rng: random.Random) -> Image.Image:
    if kind == "transparent":
        return Image.new("RGBA", (width, height), (0, 0, 0, 0))
    if kind in ("white", "light", "dark"):
        low, high = {"white": (255, 255), "light": (205, 255), "dark": (0, 60)}[kind]
        return Image.new("RGB", (width, height), tuple(rng.randint(low, high) for _ in range(3)))
    if kind == "mid":
        return Image.new(
            "RGB", (width, height), _hsv(rng.random(), rng.uniform(0.3, 0.7), rng.uniform(0.45, 0.75))
        )
    if kind == "fade":  # white to a light grey, left to right or top to bottom
        grey, across = rng.randint(170, 225), rng.random() < 0.7
        t = np.linspace(0, 1, width if across else height, dtype=np.float32)
        ramp = 255 - (255 - grey) * (t[None, :] if across else t[:, None])
        ramp = np.broadcast_to(ramp, (height, width))[..., None].repeat(3, axis=2)
        return Image.fromarray(ramp.round().astype(np.uint8), "RGB")
    if kind == "pattern":
        return _pattern(width, height, rng)
    if kind == "gradient":  # two random colours along a random direction
        ends = np.array([[rng.randint(90, 255) for _ in range(3)] for _ in range(2)], dtype=np.float32)
        angle = rng.uniform(0, 2 * math.pi)
        t = np.arange(width, dtype=np.float32)[None, :] * math.cos(angle)
        t = t + np.arange(height, dtype=np.float32)[:, None] * math.sin(angle)
        t = ((t - t.min()) / max(float(np.ptp(t)), 1.0))[..., None]
        return Image.fromarray((ends[0] * (1 - t) + ends[1] * t).round().astype(np.uint8), "RGB")
    # texture: smooth blobs of mid colours, coarse noise scaled up
    gen, cell = np.random.default_rng(rng.getrandbits(64)), rng.uniform(0.3, 0.7) * height
    grid = (int(height / cell) + 2, int(width / cell) + 2, 3)
    coarse = np.clip(np.array(_hsv(rng.random(), 0.4, 0.6)) + gen.uniform(-55, 55, grid), 0, 255)
    return Image.fromarray(coarse.astype(np.uint8), "RGB").resize((width, height), Image.BICUBIC)


def _pattern(width: int, height: int, rng: random.Random) -> Image.Image:
    """Light stripes (straight or slanted), a grid or checks, in two soft colours."""
    paper, ink = (
        _hsv(rng.random(), rng.uniform(0, 0.25), 1.0),
        _hsv(rng.random(), rng.uniform(0.1, 0.4), 0.85),
    )
    image, kind, step = Image.new("RGB", (width, height), paper), rng.randrange(3), rng.randint(4, 12)
    pen, slant = ImageDraw.Draw(image), rng.choice((0, 0, 1, -1)) * height
    if kind == 2:  # checks
        for y in range(0, height, step):
            for x in range((y // step) % 2 * step, width, 2 * step):
                pen.rectangle((x, y, x + step - 1, y + step - 1), fill=ink)
        return image
    for x in range(-height, width + height, step):
        pen.line(((x, 0), (x + slant, height)), fill=ink, width=rng.choice((1, 1, 2)))
    if kind == 1:  # a grid
        for y in range(0, height, step):
            pen.line(((0, y), (width, y)), fill=ink, width=1)
    return image


def _glyph(
    ch: str, path: str, px: int, angle: float, outline: bool, aliased: bool = False
) -> tuple[Image.Image, float]:
    """The glyph's coverage mask, rotated and cropped to its ink, and how far below the baseline its
    ink centre is (negative: above), so that glyphs share a baseline and x vs X stays clear."""
    if path in HERSHEY:
        mask, y0, y1 = _hershey_mask(ch, path, px, outline, aliased)
    else:
        font, stroke = _font(path, px), max(1, px // 14) if outline else 0
        x0, y0, x1, y1 = font.getbbox(ch, anchor="ls", stroke_width=stroke)
        mask = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4))
        pen, origin = ImageDraw.Draw(mask), (2 - x0, 2 - y0)
        if aliased:
            pen.fontmode = "1"  # Pillow's switch for text without antialiasing
        pen.text(origin, ch, fill=255, font=font, anchor="ls", stroke_width=stroke, stroke_fill=255)
        if outline:
            pen.text(origin, ch, fill=0, font=font, anchor="ls")
    if angle:
        mask = mask.rotate(angle, Image.NEAREST if aliased else Image.BICUBIC, expand=True)
    return mask.crop(mask.getbbox() or (0, 0, 1, 1)), (y0 + y1) / 2


def _hershey_mask(
    ch: str, name: str, px: int, outline: bool, aliased: bool = False
) -> tuple[Image.Image, int, int]:
    """A Hershey glyph drawn by cv2.putText: its mask, and its ink's top and bottom against the baseline
    (negative: above)."""
    import cv2

    if not (ch.isascii() and ch.isprintable()):
        raise CaptchaCrnnError(f"font {name} draws printable ASCII only, not {ch!r}")
    face, scale = HERSHEY[name], px / HERSHEY_PX
    thickness = max(1, round(px / 9)) if name.endswith("-bold") else max(1, round(px / 24))
    line = cv2.LINE_AA if name.endswith("-bold") and not aliased else cv2.LINE_8
    (width, height), below = cv2.getTextSize(ch, face, scale, thickness + 2)
    pad = thickness + 4 + round(8 * scale)  # italics and brackets reach past getTextSize's box
    canvas = np.zeros((height + below + 2 * pad, width + 2 * pad), np.uint8)
    origin = (pad, pad + height)
    cv2.putText(canvas, ch, origin, face, scale, 255, thickness + (2 if outline else 0), line)
    if outline:
        cv2.putText(canvas, ch, origin, face, scale, 0, max(1, thickness - 1), line)
    mask = Image.fromarray(canvas, "L")
    _, top, _, bottom = mask.getbbox() or (0, origin[1] - 1, 0, origin[1])
    return mask, top - origin[1], bottom - origin[1]


def _layout(
    look: Look, label: str, width: int, height: int, rng: random.Random
) -> list[tuple[Image.Image, int, int]]:
    """(mask, x, y) of each glyph, scaled down where needed for the text to fit, at a random margin."""
    parts = []
    for ch in label:
        if look.mixed_case and ch.lower() != ch.upper():
            ch = rng.choice((ch.lower(), ch.upper()))
        path = font_path(rng.choice(look.fonts))
        px = max(6, round(rng.uniform(*look.size) * height / _cap_height(path)))
        hollow = look.outline == 1 or (look.outline > 0 and rng.random() < look.outline)
        mask, cy = _glyph(ch, path, px, rng.uniform(-look.rotation, look.rotation), hollow, look.aliased)
        parts.append(
            (mask, cy + rng.uniform(-look.baseline, look.baseline) * height, rng.uniform(*look.spacing))
        )
    gaps = [spacing * mask.width for mask, _, spacing in parts[:-1]] + [0.0]
    ink, room = sum(mask.width for mask, _, _ in parts), width * 0.94 - 2
    spare = sum(gap for gap in gaps if gap > 0)
    if ink + sum(gaps) > room and spare:  # too wide: narrow the gaps (to a quarter at most) first
        squeeze = min(1.0, max(0.25, 1 - (ink + sum(gaps) - room) / spare))
        gaps = [gap * squeeze if gap > 0 else gap for gap in gaps]
    text_width = sum(mask.width + gap for (mask, _, _), gap in zip(parts, gaps))
    top = min(cy - mask.height / 2 for mask, cy, _ in parts)
    bottom = max(cy + mask.height / 2 for mask, cy, _ in parts)
    scale = min(1.0, room / text_width, height * (0.96 - 2 * look.warp) / (bottom - top))
    x = rng.uniform(0.15, 0.85) * (width - text_width * scale)
    base = -top * scale + rng.uniform(0.2, 0.8) * (height - (bottom - top) * scale)
    placed = []
    for (mask, cy, _), gap in zip(parts, gaps):
        if scale < 0.999:
            size = (max(1, round(mask.width * scale)), max(1, round(mask.height * scale)))
            mask = mask.resize(size, Image.NEAREST if look.aliased else Image.LANCZOS)
        placed.append((mask, max(0, round(x)), max(0, round(base + cy * scale - mask.height / 2))))
        x += mask.width + gap * scale
    return placed


def bezier(xs: list[float], ys: list[float], t: float) -> tuple[float, float]:
    """The point at `t` (0-1) of the cubic Bezier curve through control points (xs[i], ys[i])."""
    weights = ((1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t**3)
    return sum(w * x for w, x in zip(weights, xs)), sum(w * y for w, y in zip(weights, ys))


def _strokes(look: Look, layer: Image.Image, colours: list[Colour], rng: random.Random) -> None:
    """Strike lines (straight or cubic Bezier) and arcs across the text, in the glyphs' colours."""
    x0, y0, x1, y1 = layer.getbbox() or (0, 0, *layer.size)
    pen, w = ImageDraw.Draw(layer), x1 - x0
    for _ in range(rng.randint(*look.strike_lines)):
        xs = [rng.uniform(x0 - 8, x0 + 0.2 * w), *sorted(rng.uniform(x0, x1) for _ in range(2))]
        xs, ys = [*xs, rng.uniform(x1 - 0.2 * w, x1 + 8)], [rng.uniform(y0, y1) for _ in range(4)]
        curve = (
            [bezier(xs, ys, i / 16) for i in range(17)] if rng.random() < 0.5 else list(zip(xs[::3], ys[::3]))
        )
        pen.line(curve, fill=rng.choice(colours), width=rng.randint(*look.line_width), joint="curve")
    for _ in range(rng.randint(*look.arcs)):
        cx, cy, start = rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(0, 360)
        rx, ry = rng.uniform(0.3, 1) * w / 2 + 2, rng.uniform(0.5, 1.5) * (y1 - y0) / 2 + 2
        end, colour = start + rng.uniform(60, 200), rng.choice(colours)
        pen.arc(
            (cx - rx, cy - ry, cx + rx, cy + ry), start, end, fill=colour, width=rng.randint(*look.line_width)
        )


def _segments(image: Image.Image, count: int, rng: random.Random) -> None:
    """`count` short thin lines (0.1-0.35 of the height long) in random colours, in place."""
    pen, (width, height) = ImageDraw.Draw(image), image.size
    for _ in range(count):
        x, y, length, angle = (
            rng.uniform(0, width),
            rng.uniform(0, height),
            rng.uniform(0.1, 0.35),
            rng.random(),
        )
        dx, dy = (length * height * f(2 * math.pi * angle) for f in (math.cos, math.sin))
        colour = (*_hsv(rng.random(), rng.uniform(0.2, 0.8), rng.uniform(0.4, 0.95)), 255)
        pen.line(((x, y), (x + dx, y + dy)), fill=colour[: len(image.getbands())], width=1)


def _warp(layer: Image.Image, amplitude: float, rng: random.Random) -> Image.Image:
    """Shift each column up or down along a sine wave (premultiplied, so edges keep their colour)."""
    width, height = layer.size
    period, phase = rng.uniform(1.5, 4) * height, rng.uniform(0, 2 * math.pi)
    shift = amplitude * height * np.sin(2 * math.pi * np.arange(width) / period + phase)
    source = np.arange(height, dtype=np.float32)[:, None] + shift[None, :].astype(np.float32)
    top = np.floor(source).astype(np.intp)
    pixels = np.asarray(layer.convert("RGBa")).view(np.uint32)[..., 0]  # a word per pixel: fast gathers
    pixels, cols = np.pad(pixels, ((1, 1), (0, 0))), np.arange(width)[None, :]  # clear rows outside
    upper, lower = (pixels[np.clip(top + k, 0, height + 1), cols][..., None].view(np.uint8) for k in (1, 2))
    warped = upper + (source - top)[..., None] * (lower.astype(np.float32) - upper)
    return Image.fromarray(warped.round().astype(np.uint8), "RGBa").convert("RGBA")


def _dots(image: Image.Image, density: float, colours: list[Colour], rng: random.Random) -> Image.Image:
    """Dots of 1 or 2x2 px in the glyphs' and three random colours over `density` of the pixels."""
    gen, pixels = np.random.default_rng(rng.getrandbits(64)), np.array(image)
    count, (height, width) = int(density * image.width * image.height), pixels.shape[:2]
    palette = np.array([(*c, 255) for c in colours] + [(*gen.integers(0, 256, 3), 255) for _ in range(3)])
    ys, xs = gen.integers(0, height - 1, count), gen.integers(0, width - 1, count)
    picked, big = palette[gen.integers(0, len(palette), count)], gen.random(count) < 0.4
    for dy, dx, which in ((0, 0, slice(None)), (0, 1, big), (1, 0, big), (1, 1, big)):
        pixels[ys[which] + dy, xs[which] + dx] = picked[which]
    return Image.fromarray(pixels, "RGBA")


def _tinted(mask: Image.Image, paint: Colour | Image.Image, opacity: float = 1.0) -> Image.Image:
    """An RGBA glyph: `paint` (a colour, or an RGB image the mask's size) seen through the mask."""
    glyph = paint.convert("RGBA") if isinstance(paint, Image.Image) else Image.new("RGBA", mask.size, paint)
    glyph.putalpha(mask if opacity == 1 else mask.point(lambda v: round(v * opacity)))
    return glyph


class Layers(NamedTuple):
    background: Image.Image  # RGB, or RGBA when transparent
    text: Image.Image  # RGBA: glyphs, shadows, strike lines and arcs, warped
    colours: list[Colour]  # the glyphs' colours, in label order


def _paint(
    look: Look,
    under: np.ndarray | None,
    mask: Image.Image,
    x: int,
    y: int,
    i: int,
    hue: float,
    rng: random.Random,
) -> tuple[Colour | Image.Image, Colour]:
    """What glyph i is filled with (a colour, or an image for equiluminant glyphs) and its colour."""
    if under is None:  # no background to match ("dark", "light") or a transparent one, seen as white
        return (colour := _glyph_colour(look.colours, (255, 255, 255), i, hue, rng)), colour
    region = under[y : y + mask.height, x : x + mask.width]  # the background under the glyph
    weights = np.asarray(mask, dtype=np.float32)[: region.shape[0], : region.shape[1]]
    local = (region * weights[..., None]).sum((0, 1)) / max(float(weights.sum()), 1.0)
    if look.colours != "equiluminant":
        return (colour := _glyph_colour(look.colours, local, i, hue, rng)), colour
    covered = region[weights > 0]  # per pixel: the background under the glyph plus one step
    step = equiluminant_step(covered.min(0), covered.max(0), rng)
    fill = Image.fromarray(np.clip(region + step, 0, 255).round().astype(np.uint8)).crop((0, 0, *mask.size))
    return fill, tuple(int(c) for c in np.clip(np.round(local + step), 0, 255))  # type: ignore[return-value]


def layers(look: Look, label: str, width: int, height: int, rng: random.Random) -> Layers:
    """The background and the text layer, before they are combined, dotted and blurred."""
    background = _background(look.background, width, height, rng)
    if look.segments[1]:
        _segments(background, rng.randint(*look.segments), rng)
    matched = look.colours in ("random", "multi", "equiluminant") and not look.transparent
    under = np.asarray(background, dtype=np.float32) if matched else None
    text, colours, hue = Image.new("RGBA", (width, height)), [], rng.random()
    for i, (mask, x, y) in enumerate(_layout(look, label, width, height, rng)):
        paint, colour = _paint(look, under, mask, x, y, i, hue, rng)
        colours.append(colour)
        if look.shadow:
            offset, shade = max(1, mask.height // 14), (colour[0] // 3, colour[1] // 3, colour[2] // 3)
            text.alpha_composite(_tinted(mask, shade, 0.65), (x + offset, y + offset))
        text.alpha_composite(_tinted(mask, paint), (x, y))
    _strokes(look, text, colours, rng)
    return Layers(background, _warp(text, look.warp, rng) if look.warp else text, colours)


def draw(look: Look, label: str, width: int, height: int, rng: random.Random) -> Image.Image:
    """One captcha of `label`: RGB, or RGBA when the look's background is transparent."""
    background, text, colours = layers(look, label, width, height, rng)
    image = Image.alpha_composite(background.convert("RGBA"), text)
    if look.dots:
        image = _dots(image, look.dots, colours, rng)
    radius = rng.uniform(0, look.blur) if look.blur else 0.0
    if radius >= 0.3:
        image = image.convert("RGBa").filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
    if look.crop is not None:
        image = _cropped(image, text, look.crop, rng)
    if look.jpeg is not None:  # never transparent (Look checks)
        image = jpeg(image.convert("RGB"), look.jpeg)
    return image if look.transparent else image.convert("RGB")


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """`image` saved as JPEG at `quality` and read back: its artefacts, as a site serving JPEG shows them."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _cropped(image: Image.Image, text: Image.Image, margin: float, rng: random.Random) -> Image.Image:
    """`image` cut to the text layer's extent plus 0..`margin` of the text's height on each side."""
    box = text.getchannel("A").point(lambda a: 255 if a >= 128 else 0).getbbox()
    if box is None:
        return image
    left, top, right, bottom = box
    pad = [round(rng.uniform(0, margin) * (bottom - top)) for _ in range(4)]
    return image.crop(
        (
            max(0, left - pad[0]),
            max(0, top - pad[1]),
            min(image.width, right + pad[2]),
            min(image.height, bottom + pad[3]),
        )
    )
