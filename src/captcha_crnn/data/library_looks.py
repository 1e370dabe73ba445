"""Captchas drawn the way popular open-source libraries draw theirs by default (docs/library-looks.md).

Many sites serve a library's captcha with its defaults or little changed: Kaptcha (Java), Gregwar
(PHP), django-simple-captcha and svg-captcha. These imitate each default look in Pillow for the general
recipe, at a random scale, with the recipe's label and fonts of the same kind (Liberation Sans and Mono
are metric twins of Arial and Courier). Securimage is left out on purpose: it draws a source the general
model is tested on, never trained on.

Each function takes the label, the fonts to draw with (paths) and the `rng` every choice comes from,
and returns an RGB image.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from captcha_crnn.data.looks import bezier, jpeg

Fonts = Sequence[str]


def _font(fonts: Fonts, px: float, rng: random.Random) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(rng.choice(list(fonts)), max(6, round(px)))


def _remap(image: Image.Image, fx: np.ndarray, fy: np.ndarray, fill: tuple[int, ...]) -> Image.Image:
    """`image` sampled bilinearly at (fx, fy) for each output pixel; `fill` outside it."""
    pixels = np.asarray(image, dtype=np.float32)
    h, w = pixels.shape[:2]
    padded = np.empty((h + 2, w + 2, pixels.shape[2]), np.float32)
    padded[...] = fill
    padded[1:-1, 1:-1] = pixels
    x, y = np.clip(fx + 1, 0, w + 0.999), np.clip(fy + 1, 0, h + 0.999)
    x0, y0 = np.minimum(x.astype(np.intp), w), np.minimum(y.astype(np.intp), h)
    ax, ay = (x - x0)[..., None], (y - y0)[..., None]
    top = padded[y0, x0] * (1 - ax) + padded[y0, x0 + 1] * ax
    bottom = padded[y0 + 1, x0] * (1 - ax) + padded[y0 + 1, x0 + 1] * ax
    out = top * (1 - ay) + bottom * ay
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8), image.mode)


def _curve(points: list[tuple[float, float]], steps: int) -> list[tuple[float, float]]:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return [bezier(xs, ys, i / steps) for i in range(steps + 1)]


def kaptcha(text: str, fonts: Fonts, rng: random.Random) -> Image.Image:
    """Kaptcha's default: bold black glyphs side by side on a light-grey-to-white diagonal gradient,
    rippled, two tapering black curves, a 1 px black border."""
    s = rng.uniform(0.6, 1.4)
    size = 40 * s
    glyphs = [(ch, _font(fonts, size, rng)) for ch in text]
    widths = [font.getlength(ch) for ch, font in glyphs]
    gap = 2 * s
    w = max(round(200 * s), round(sum(widths) + gap * (len(text) - 1) + 20 * s))
    h = round(50 * s)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)
    x, baseline = (w - sum(widths) - gap * (len(text) - 1)) / 2, (h - size) / 5 + size
    for (ch, font), width in zip(glyphs, widths):
        pen.text((x, baseline), ch, font=font, fill=(0, 0, 0, 255), anchor="ls")
        x += width + gap
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    layer = _remap(
        layer, xs + 2.6 * s * np.sin(ys / (15 * s)), ys + 1.7 * s * np.sin(xs / (5 * s)), (0, 0, 0, 0)
    )
    pen = ImageDraw.Draw(layer)
    for fractions in ((0.1, 0.1, 0.25, 0.25), (0.1, 0.25, 0.5, 0.9)):
        curve = _curve([(f * w, rng.random() * h) for f in fractions], 12)
        for k, (start, end) in enumerate(itertools.pairwise(curve)):
            width = max(1, round((3.6, 2.7)[k] * s if k < 2 else 1.8 * s))
            pen.line([start, end], fill=(0, 0, 0, 255), width=width)
    t = (xs / max(w - 1, 1) + ys / max(h - 1, 1)) / 2
    grey = 192 + (255 - 192) * t
    image = Image.fromarray(np.repeat(grey[..., None], 3, axis=2).round().astype(np.uint8)).convert("RGBA")
    image.alpha_composite(layer)
    image = image.convert("RGB")
    ImageDraw.Draw(image).rectangle((0, 0, w - 1, h - 1), outline=(0, 0, 0))
    return image


def gregwar(text: str, fonts: Fonts, rng: random.Random) -> Image.Image:
    """Gregwar's CaptchaBuilder: lines behind and in front of dark tilted glyphs on a light solid
    background, a radial and sine distortion, sometimes negated, saved as JPEG."""
    s = rng.uniform(0.8, 1.6)
    w, h = round(150 * s), round(40 * s)
    background = tuple(rng.randint(200, 255) for _ in range(3))
    image = Image.new("RGB", (w, h), background)
    pen = ImageDraw.Draw(image)

    def lines(colour: tuple[int, ...] | None) -> None:
        for _ in range(rng.randint(2, 3)):
            if rng.random() < 0.5:
                ends = (
                    (rng.uniform(0, w / 2), rng.uniform(0, h)),
                    (rng.uniform(w / 2, w), rng.uniform(0, h)),
                )
            else:
                ends = (
                    (rng.uniform(0, w), rng.uniform(0, h / 2)),
                    (rng.uniform(0, w), rng.uniform(h / 2, h)),
                )
            fill = colour or tuple(rng.randint(100, 255) for _ in range(3))
            pen.line(ends, fill=fill, width=rng.randint(1, 3))

    lines(None)
    colour = tuple(rng.randint(0, 150) for _ in range(3))
    px = 1.25 * (w / max(len(text), 1) - rng.randint(1, 4))
    px = min(px, 0.9 * h)
    glyphs = [(ch, _font(fonts, px, rng)) for ch in text]
    widths = [font.getlength(ch) for ch, font in glyphs]
    x = max(0.0, (w - sum(widths)) / 2)
    for (ch, font), width in zip(glyphs, widths):
        tile = Image.new("L", (round(width + px), round(2 * px)))
        ImageDraw.Draw(tile).text((px / 2, px * 1.4), ch, font=font, fill=255, anchor="ls")
        tile = tile.rotate(rng.uniform(-8, 8), Image.BICUBIC)
        y = (h - 0.72 * px) / 2 - 0.65 * px + rng.uniform(-5, 5) * s  # cap height centred, then jittered
        image.paste(Image.new("RGB", tile.size, colour), (round(x - px / 2), round(y)), tile)
        x += width
    lines(colour)
    cx, cy, phase, scale = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 10), rng.uniform(1.1, 1.43)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    vx, vy = xs - cx, ys - cy
    n = np.maximum(np.hypot(vx, vy), 1e-3)
    grow = (n + 4 * s * np.sin(n / (30 * s))) / n
    fx, fy = cx + vx * grow, cy + vy * grow
    fy = fy + scale * s * np.sin(phase + fx * 0.2 / s)
    image = _remap(image, fx, fy, background)
    if rng.random() < 0.5:
        image = ImageOps.invert(image)
    if rng.random() < 1 / 11:
        image = image.filter(ImageFilter.FIND_EDGES)
    return jpeg(image, 90)


def django_simple(text: str, fonts: Fonts, rng: random.Random) -> Image.Image:
    """django-simple-captcha: upper-case glyphs each turned up to 35 degrees, 2 px apart, in a dark
    green-black on white, an arc and two lines across, dots on a tenth of the pixels, smoothed."""
    s = rng.uniform(0.8, 2.0)  # its 2x image doubles the font size
    font = _font(fonts, 22 * s * 1.3, rng)
    foreground = (0, 17, 0)
    text = text.upper() if rng.random() < 0.7 else text
    tiles = []
    for ch in text:
        left, top, right, bottom = font.getbbox(f" {ch} ")
        tile = Image.new("L", (right - left, bottom - top))
        ImageDraw.Draw(tile).text((-left, -top), f" {ch} ", font=font, fill=255)
        tile = tile.rotate(rng.randrange(-35, 35), Image.BICUBIC)
        tiles.append(tile.crop(tile.getbbox() or (0, 0, 1, 1)))
    h = round(max(t.height for t in tiles) * 1.4) + 4
    w = sum(t.width + 2 for t in tiles) + 4
    image = Image.new("RGB", (w, h), (255, 255, 255))
    x = 2
    for tile in tiles:
        image.paste(Image.new("RGB", tile.size, foreground), (x, 4), tile)
        x += tile.width + 2
    pen = ImageDraw.Draw(image)
    pen.arc((-20, -20, w, 20), 0, 295, fill=foreground)
    pen.line((-20, 20, w + 20, h - 20), fill=foreground)
    pen.line((-20, 0, w + 20, h), fill=foreground)
    gen = np.random.default_rng(rng.getrandbits(64))
    pixels = np.array(image)
    count = int(w * h * 0.1)
    pixels[gen.integers(0, h, count), gen.integers(0, w, count)] = foreground
    return Image.fromarray(pixels).filter(ImageFilter.SMOOTH)


def svg_captcha(text: str, fonts: Fonts, rng: random.Random) -> Image.Image:
    """svg-captcha: glyphs spread evenly across the width at mid-height, unturned, in grey (or one hue
    each), with one thin curve from the left edge to the right, drawn under or over them."""
    s = rng.uniform(0.7, 1.4)
    w, h = round(150 * s * max(1.0, len(text) / 4)), round(50 * s)
    image = Image.new("RGB", (w, h), (255, 255, 255))
    pen = ImageDraw.Draw(image)
    colour_mode = rng.random() < 0.3

    def grey(k: int) -> tuple[int, int, int]:
        return (17 * k,) * 3

    def curve() -> None:
        points = [(rng.uniform(1, 21), rng.uniform(1, h - 1))]
        points += [(w / 2 + rng.uniform(-21, 21), rng.uniform(1, h - 1)) for _ in range(2)]
        points += [(rng.uniform(w - 21, w - 1), rng.uniform(1, h - 1))]
        pen.line(_curve(points, 24), fill=grey(rng.randint(1, 9)), width=1, joint="curve")

    noise_first = rng.random() < 0.5
    if noise_first:
        curve()
    spacing = (w - 2) / (len(text) + 1)
    for i, ch in enumerate(text):
        font = _font(fonts, 0.75 * h, rng)
        if colour_mode:
            hue = rng.randint(0, 24) / 24
            fill = _hsl(hue, rng.uniform(0.6, 0.8), rng.uniform(0.3, 0.5))
        else:
            fill = grey(rng.randint(0, 4))
        pen.text((spacing * (i + 1), h / 2), ch, font=font, fill=fill, anchor="mm")
    if not noise_first:
        curve()
    return image


def _hsl(h: float, s: float, lightness: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hls_to_rgb(h, lightness, s)
    return round(255 * r), round(255 * g), round(255 * b)


LIBRARIES: dict[str, Callable[[str, Fonts, random.Random], Image.Image]] = {
    "kaptcha": kaptcha,
    "gregwar": gregwar,
    "django-simple-captcha": django_simple,
    "svg-captcha": svg_captcha,
}
