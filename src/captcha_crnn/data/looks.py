"""Captchas drawn with Pillow in many looks: fonts, backgrounds, colour schemes, strokes, dots and warps.

A `Look` says how to draw; `draw()` makes one image of a label. All randomness comes from the `rng`
passed in (numpy draws from a Generator seeded by it), so the same seed gives the same pixels.
`synthetic.Style(look=Look(...))` renders with this module instead of the `captcha` library.

Fonts are named: "droid-mono" is DroidSansMono.ttf, bundled with the `captcha` package; the dejavu-*
names come from the Debian package fonts-dejavu-core (sans, sans-bold, serif, serif-bold, mono,
mono-bold) or fonts-dejavu-extra (oblique, italic, condensed), liberation-* from fonts-liberation and
free-* from fonts-freefont-ttf.
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

from captcha_crnn.errors import CaptchaCrnnError

Colour = tuple[int, int, int]
_CORE, _EXTRA = "fonts-dejavu-core", "fonts-dejavu-extra"
FONTS: dict[str, tuple[str, str]] = {  # name -> (file under /usr/share/fonts/truetype, Debian package)
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
    "liberation-sans": ("liberation/LiberationSans-Regular.ttf", "fonts-liberation"),
    "liberation-serif": ("liberation/LiberationSerif-Regular.ttf", "fonts-liberation"),
    "liberation-mono": ("liberation/LiberationMono-Regular.ttf", "fonts-liberation"),
    "free-sans": ("freefont/FreeSans.ttf", "fonts-freefont-ttf"),
    "free-serif": ("freefont/FreeSerif.ttf", "fonts-freefont-ttf"),
    "free-mono": ("freefont/FreeMono.ttf", "fonts-freefont-ttf"),
}
FONT_DIR = Path("/usr/share/fonts/truetype")
BACKGROUNDS = ("light", "white", "dark", "mid", "gradient", "texture", "transparent")
COLOURS = ("dark", "random", "multi", "equiluminant", "light")


@dataclass(frozen=True)
class Look:
    """How captchas are drawn. Ranges are (low, high), drawn per image or per glyph."""

    fonts: tuple[str, ...] = ("droid-mono",)  # one drawn per glyph
    background: str = "light"  # one of BACKGROUNDS; "mid": a solid colour of middling brightness
    colours: str = "dark"  # glyph colours, one of COLOURS
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
    outline: bool = False  # hollow glyphs
    shadow: bool = False  # a dark offset copy behind each glyph

    def __post_init__(self) -> None:
        unknown = [f for f in self.fonts if f != "droid-mono" and f not in FONTS]
        if isinstance(self.fonts, str) or not self.fonts or unknown:
            names = ", ".join(["droid-mono", *FONTS])
            raise CaptchaCrnnError(f"unknown font {unknown or self.fonts!r}; fonts are: {names}")
        if self.background not in BACKGROUNDS or self.colours not in COLOURS:
            raise CaptchaCrnnError(
                f"background must be one of {', '.join(BACKGROUNDS)} and colours one of "
                f"{', '.join(COLOURS)}, got {self.background!r} and {self.colours!r}"
            )
        if self.colours == "equiluminant" and self.background in ("white", "transparent"):
            raise CaptchaCrnnError(f"equiluminant glyphs need a coloured background, not {self.background}")
        if not 0.2 <= self.size[0] <= self.size[1] <= 1 or not -0.35 <= self.spacing[0] <= self.spacing[1]:
            raise CaptchaCrnnError(
                f"size must be within 0.2-1 and spacing at least -0.35 (more overlap makes labels "
                f"ambiguous), low <= high; got {self.size} and {self.spacing}"
            )
        for name in ("strike_lines", "line_width", "arcs"):
            low, high = getattr(self, name)
            if not (name == "line_width") <= low <= high:
                raise CaptchaCrnnError(f"{name} must be a (low, high) count with 0 <= low <= high")
        if min(self.rotation, self.baseline, self.warp, self.blur, self.dots) < 0 or self.dots > 0.5:
            raise CaptchaCrnnError("rotation, baseline, warp, blur and dots must be >= 0 (dots <= 0.5)")

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


@functools.cache
def font_path(name: str) -> str:
    """The TTF file of a font name; CaptchaCrnnError naming the package to install when it is missing."""
    if name == "droid-mono":
        try:
            return str(resources.files("captcha") / "data" / "DroidSansMono.ttf")
        except ModuleNotFoundError:
            raise CaptchaCrnnError(
                "font droid-mono comes with the captcha package: pip install captcha"
            ) from None
    file, package = FONTS[name]
    path = FONT_DIR / file
    if not path.is_file():
        raise CaptchaCrnnError(f"font {name} needs {path}: install the Debian package {package}")
    return str(path)


@functools.lru_cache(maxsize=1024)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


@functools.cache
def _cap_height(path: str) -> float:
    return -_font(path, 100).getbbox("H", anchor="ls")[1] / 100


def luminance(colour: tuple[float, ...]) -> float:
    """Brightness as Pillow's RGB -> "L" conversion computes it (0-255)."""
    return (299 * colour[0] + 587 * colour[1] + 114 * colour[2]) / 1000


def _hsv(h: float, s: float, v: float) -> Colour:
    return tuple(round(255 * c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))  # type: ignore[return-value]


def equiluminant_step(low: np.ndarray, high: np.ndarray, rng: random.Random) -> np.ndarray:
    """An RGB step that changes hue but not brightness (its luminance is 0), as long as it can be while
    background pixels from `low` to `high` (per channel) plus the step stay within 0-255: towards the
    hue, of 6 random ones, that allows the largest step."""
    best = np.zeros(3)
    for _ in range(6):
        pure = np.array(_hsv(rng.random(), 1.0, 1.0), dtype=np.float64)
        step = pure - luminance(pure)
        t = min((255 - hi) / d if d > 0 else lo / -d for d, lo, hi in zip(step, low, high) if d)
        if np.abs(t * step).sum() > np.abs(best).sum():
            best = t * step
    return best


def _glyph_colour(mode: str, local: tuple[float, ...], i: int, hue: float, rng: random.Random) -> Colour:
    """Glyph i's colour; "random" and "multi" contrast with `local`, the mean background under it
    (transparent counts as white: loaders composite on white). "equiluminant" is drawn in layers()."""
    if mode == "dark":
        return tuple(rng.randint(0, 90) for _ in range(3))  # type: ignore[return-value]
    if mode == "light":
        return tuple(rng.randint(190, 255) for _ in range(3))  # type: ignore[return-value]
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
    solid = {
        "white": lambda: (255, 255, 255),
        "light": lambda: tuple(rng.randint(205, 255) for _ in range(3)),
        "dark": lambda: tuple(rng.randint(0, 60) for _ in range(3)),
        "mid": lambda: _hsv(rng.random(), rng.uniform(0.3, 0.7), rng.uniform(0.45, 0.75)),
    }
    if kind in solid:
        return Image.new("RGB", (width, height), solid[kind]())
    if kind == "gradient":  # two random colours along a random direction
        ends = np.array([[rng.randint(90, 255) for _ in range(3)] for _ in range(2)], dtype=np.float32)
        angle = rng.uniform(0, 2 * math.pi)
        t = np.arange(width, dtype=np.float32) * math.cos(angle)
        t = t[None, :] + np.arange(height, dtype=np.float32)[:, None] * math.sin(angle)
        t = ((t - t.min()) / max(float(np.ptp(t)), 1.0))[..., None]
        pixels = ends[0] * (1 - t) + ends[1] * t
    else:  # texture: smooth blobs of mid colours, from coarse noise scaled up
        gen = np.random.default_rng(rng.getrandbits(64))
        cell = rng.uniform(0.3, 0.7) * height
        grid = (int(height / cell) + 2, int(width / cell) + 2, 3)
        coarse = np.clip(np.array(_hsv(rng.random(), 0.4, 0.6)) + gen.uniform(-55, 55, grid), 0, 255)
        pixels = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _glyph(ch: str, path: str, px: int, angle: float, outline: bool) -> tuple[Image.Image, float]:
    """The glyph's coverage mask cropped to its ink, rotated, and its ink centre's height above (-) or
    below (+) the baseline, so glyphs keep their place on a shared baseline (x vs X stays clear)."""
    font, stroke = _font(path, px), max(1, px // 14) if outline else 0
    x0, y0, x1, y1 = font.getbbox(ch, anchor="ls", stroke_width=stroke)
    mask = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4))
    pen, origin = ImageDraw.Draw(mask), (2 - x0, 2 - y0)
    pen.text(origin, ch, fill=255, font=font, anchor="ls", stroke_width=stroke, stroke_fill=255)
    if outline:
        pen.text(origin, ch, fill=0, font=font, anchor="ls")
    if angle:
        mask = mask.rotate(angle, Image.BICUBIC, expand=True)
    return mask.crop(mask.getbbox() or (0, 0, 1, 1)), (y0 + y1) / 2


def _layout(look: Look, label: str, width: int, height: int, rng: random.Random):  # type: ignore[no-untyped-def]
    """[(mask, x, y)] of the glyphs, scaled down where needed so that the text fits, at a random margin."""
    parts = []
    for ch in label:
        path = font_path(rng.choice(look.fonts))
        px = max(6, round(rng.uniform(*look.size) * height / _cap_height(path)))
        mask, cy = _glyph(ch, path, px, rng.uniform(-look.rotation, look.rotation), look.outline)
        jitter = rng.uniform(-look.baseline, look.baseline) * height
        parts.append((mask, cy + jitter, rng.uniform(*look.spacing) * mask.width))
    gaps = [gap for _, _, gap in parts[:-1]] + [0.0]
    text_width = sum(m.width + gap for (m, _, _), gap in zip(parts, gaps))
    top = min(cy - m.height / 2 for m, cy, _ in parts)
    bottom = max(cy + m.height / 2 for m, cy, _ in parts)
    room = height * (0.96 - 2 * look.warp)
    scale = min(1.0, (width * 0.94 - 2) / text_width, room / (bottom - top))
    x = rng.uniform(0.15, 0.85) * (width - text_width * scale)
    base = -top * scale + rng.uniform(0.2, 0.8) * (height - (bottom - top) * scale)
    placed = []
    for (mask, cy, _), gap in zip(parts, gaps):
        if scale < 0.999:
            mask = mask.resize(
                (max(1, round(mask.width * scale)), max(1, round(mask.height * scale))), Image.LANCZOS
            )
        placed.append((mask, round(x), round(base + cy * scale - mask.height / 2)))
        x += mask.width + gap * scale
    return placed


def _bezier(xs: list[float], ys: list[float], t: float) -> tuple[float, float]:
    weights = ((1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t**3)
    return sum(w * x for w, x in zip(weights, xs)), sum(w * y for w, y in zip(weights, ys))


def _strokes(look: Look, layer: Image.Image, colours: list[Colour], rng: random.Random) -> None:
    """Strike lines (straight or cubic Bezier) and arcs across the text box, in the glyphs' colours."""
    x0, y0, x1, y1 = layer.getbbox() or (0, 0, *layer.size)
    pen = ImageDraw.Draw(layer)
    for _ in range(rng.randint(*look.strike_lines)):
        ys = [rng.uniform(y0, y1) for _ in range(4)]
        xs = [rng.uniform(x0 - 8, x0 + 0.2 * (x1 - x0)), *sorted(rng.uniform(x0, x1) for _ in range(2))]
        xs.append(rng.uniform(x1 - 0.2 * (x1 - x0), x1 + 8))
        points = (
            list(zip(xs[::3], ys[::3]))
            if rng.random() < 0.5
            else [_bezier(xs, ys, i / 16) for i in range(17)]
        )
        pen.line(points, fill=(*rng.choice(colours), 255), width=rng.randint(*look.line_width), joint="curve")
    for _ in range(rng.randint(*look.arcs)):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        rx, ry = rng.uniform(0.3, 1) * (x1 - x0) / 2 + 2, rng.uniform(0.5, 1.5) * (y1 - y0) / 2 + 2
        start = rng.uniform(0, 360)
        pen.arc((cx - rx, cy - ry, cx + rx, cy + ry), start, start + rng.uniform(60, 200),
                fill=(*rng.choice(colours), 255), width=rng.randint(*look.line_width))  # fmt: skip


def _warp(layer: Image.Image, amplitude: float, rng: random.Random) -> Image.Image:
    """Shift each column up or down along a sine wave (premultiplied, so edges keep their colour)."""
    width, height = layer.size
    period, phase = rng.uniform(1.5, 4) * height, rng.uniform(0, 2 * math.pi)
    shift = amplitude * height * np.sin(2 * math.pi * np.arange(width) / period + phase)
    source = np.arange(height, dtype=np.float32)[:, None] + shift[None, :].astype(np.float32)
    top = np.floor(source).astype(np.intp)
    frac = (source - top)[..., None]
    pixels = np.asarray(layer.convert("RGBa")).view(np.uint32)[..., 0]  # one word per pixel: fast gathers
    pixels = np.pad(pixels, ((1, 1), (0, 0)))  # transparent rows above and below
    cols = np.arange(width)[None, :]
    upper, lower = (pixels[np.clip(top + k, 0, height + 1), cols][..., None].view(np.uint8) for k in (1, 2))
    warped = upper + frac * (lower.astype(np.float32) - upper)
    return Image.fromarray(warped.round().astype(np.uint8), "RGBa").convert("RGBA")


def _under(under: np.ndarray, mask: Image.Image, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
    """The background pixels (n, 3) a glyph placed at (x, y) covers, and its coverage of each (n,)."""
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + mask.width, under.shape[1]), min(y + mask.height, under.shape[0])
    weights = np.asarray(mask, dtype=np.float32)[y0 - y : y1 - y, x0 - x : x1 - x].reshape(-1)
    return under[y0:y1, x0:x1].reshape(-1, 3)[weights > 0], weights[weights > 0]


class Layers(NamedTuple):
    background: Image.Image  # RGB, or RGBA when transparent
    text: Image.Image  # RGBA: glyphs, shadows, strike lines and arcs, warped
    colours: list[Colour]  # the glyphs' colours, in label order


def layers(look: Look, label: str, width: int, height: int, rng: random.Random) -> Layers:
    """The background and the text layer, before they are combined, dotted and blurred."""
    background = _background(look.background, width, height, rng)
    under = None if look.transparent else np.asarray(background, dtype=np.float32)
    text, colours, hue = Image.new("RGBA", (width, height), (0, 0, 0, 0)), [], rng.random()
    for i, (mask, x, y) in enumerate(_layout(look, label, width, height, rng)):
        pixels, weights = _under(under, mask, x, y) if under is not None else (np.full((1, 3), 255.0), [1])
        local = tuple(np.average(pixels, axis=0, weights=weights))
        if look.colours == "equiluminant":  # per pixel: the background under the glyph plus one step
            step = equiluminant_step(pixels.min(0), pixels.max(0), rng)
            fill = Image.fromarray(np.clip(under + step, 0, 255).round().astype(np.uint8), "RGB")
            colour: Colour = tuple(int(c) for c in np.clip(np.round(local + step), 0, 255))  # type: ignore[assignment]
        else:
            colour = _glyph_colour(look.colours, local, i, hue, rng)
        colours.append(colour)
        if look.shadow:
            offset = max(1, mask.height // 14)
            text.paste((*(c // 3 for c in colour), 170), (x + offset, y + offset), mask)
        glyph = (
            fill.crop((x, y, x + mask.width, y + mask.height)) if look.colours == "equiluminant" else colour
        )
        text.paste(glyph, (x, y), mask)
    _strokes(look, text, colours, rng)
    if look.warp:
        text = _warp(text, look.warp, rng)
    return Layers(background, text, colours)


def draw(look: Look, label: str, width: int, height: int, rng: random.Random) -> Image.Image:
    """One captcha of `label`: RGB, or RGBA when the look's background is transparent."""
    background, text, colours = layers(look, label, width, height, rng)
    image = Image.alpha_composite(background.convert("RGBA"), text)
    if look.dots:
        gen = np.random.default_rng(rng.getrandbits(64))
        pixels = np.array(image)
        count = int(look.dots * width * height)
        palette = np.array([(*c, 255) for c in colours] + [(*gen.integers(0, 256, 3), 255) for _ in range(3)])
        ys, xs = gen.integers(0, height - 1, count), gen.integers(0, width - 1, count)
        picked = palette[gen.integers(0, len(palette), count)]
        pixels[ys, xs] = picked
        big = gen.random(count) < 0.4  # some dots 2x2
        for dy, dx in ((0, 1), (1, 0), (1, 1)):
            pixels[ys[big] + dy, xs[big] + dx] = picked[big]
        image = Image.fromarray(pixels, "RGBA")
    radius = rng.uniform(0, look.blur) if look.blur else 0.0
    if radius >= 0.3:
        image = image.convert("RGBa").filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
    return image if look.transparent else image.convert("RGB")
