"""The general model's training data: captchas of a random look, size, charset and length, per image.

`Style(recipe="general")` draws with `draw()` here instead of one fixed look, so `train --synthetic N`
streams the mixture the shipped general model (`scripts/pretrain.py`) learns from. Every draw comes
from the `rng` passed in, so a seed gives the same images.

Fonts: the free families Debian packages (Liberation, FreeFont, Roboto, URW base35), and OpenCV's
Hershey stroke fonts (`opencv-python-headless<5`). DejaVu and the
`captcha` package's DroidSansMono are left out on purpose: the held-out benchmark styles
(`benchmarks/styles.py`) are drawn with them, so the general model never saw their fonts.
"""

from __future__ import annotations

import functools
import os
import random
import re
import string
from pathlib import Path

from PIL import Image

from captcha_crnn.data import library_looks, looks
from captcha_crnn.data.looks import Look
from captcha_crnn.errors import CaptchaCrnnError

CHARSET = string.digits + string.ascii_lowercase + string.ascii_uppercase
FONT_GLOBS = (
    "truetype/liberation/*.ttf",
    "truetype/freefont/*.ttf",
    "truetype/roboto/unhinted/RobotoTTF/*.ttf",
    "truetype/roboto/unhinted/*.ttf",
    "opentype/urw-base35/*.otf",
)
FONT_PACKAGES = "fonts-liberation fonts-freefont-ttf fonts-roboto-unhinted fonts-urw-base35"
# Symbols, dingbats and a script face: not text a captcha is drawn in.
EXCLUDED_FONTS = ("StandardSymbolsPS", "D050000L", "Z003")
# Stage 16 on: many more free families (sans, serif, mono, rounded, handwritten, display, pixel), drawn
# for MORE_FONTS_SHARE of the images: the variety of faces real sites draw in, beside the families above.
# Every face installed under MORE_FONT_ROOTS with all of CHARSET's glyphs counts (stage 16 had
# MORE_FONT_PACKAGES installed, and no other font package beside FONT_PACKAGES and DejaVu), except
# DejaVu (the held-out benchmark styles') and MORE_EXCLUDED; at most MORE_PER_FAMILY faces of a family, so
# that a family of many weights (Noto, Latin Modern) is drawn no more often than one of four.
MORE_FONT_PACKAGES = (
    "fonts-noto-core fonts-open-sans fonts-lato fonts-cantarell fonts-crosextra-carlito "
    "fonts-crosextra-caladea fonts-croscore fonts-texgyre fonts-comic-neue fonts-hack fonts-inconsolata "
    "fonts-go fonts-adf-accanthis fonts-adf-baskervald fonts-adf-berenis fonts-adf-gillius "
    "fonts-adf-ikarius fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus fonts-adf-oldania "
    "fonts-adf-romande fonts-adf-solothurn fonts-adf-switzera fonts-adf-tribun fonts-adf-universalis "
    "fonts-adf-verana fonts-cabin fonts-cabinsketch fonts-dustin fonts-humor-sans fonts-femkeklaver "
    "fonts-breip fonts-dkg-handwriting fonts-kristi fonts-isabella fonts-league-spartan fonts-league-mono "
    "fonts-radisnoir fonts-tuffy fonts-yanone-kaffeesatz fonts-vollkorn fonts-quattrocento "
    "fonts-linuxlibertine fonts-lmodern fonts-ebgaramond fonts-sil-andika fonts-sil-charis "
    "fonts-sil-gentium fonts-mplus fonts-jetbrains-mono fonts-firacode fonts-unifont fonts-goudybookletter"
)
# The folder that stands for / where the recipe's fonts are looked up: a lent GPU's machine has other fonts
# (or none), so `scripts/pretrain.py pack` carries the recipe's own there, under this root.
FONT_ROOT = Path(os.environ.get("CAPTCHA_CRNN_FONT_ROOT", "/"))
FONT_DIR = str(FONT_ROOT / "usr/share/fonts")
MORE_FONT_ROOTS = (FONT_DIR, str(FONT_ROOT / "usr/share/texmf/fonts"))
# Symbols; faces that draw lower case as capitals (small caps, titling, Humor Sans): a label's case would
# lie; keyboard keys; a bitmap face PIL cannot scale; the wildest display faces.
MORE_EXCLUDED = ("Symbols", "Math", "Nushu", "Euterpe", "Dingbat", "Caps", "Titling", "Style", "Humor")
MORE_EXCLUDED += ("Keyboard", "Sample", "Wargames", "F500", "wasn_t")
MORE_PER_FAMILY = 4
MORE_FONTS_SHARE = 0.5

# Which characters a label draws from, and how often: most real captchas use digits or lower case.
CHARSETS = (
    (string.digits, 0.2),
    (string.ascii_lowercase + string.digits, 0.35),
    (string.ascii_uppercase + string.digits, 0.15),
    (CHARSET, 0.3),
)
LENGTH_WEIGHTS = (1, 2, 4, 8, 8, 7, 5, 3, 2, 2)  # lengths 1..10
LIBRARY_SHARE = 0.25  # drawn by the `captcha` library's ImageCaptcha (with these fonts) instead of looks
# Of the other images (stage 6 on): drawn as Kaptcha, Gregwar, django-simple-captcha or svg-captcha draw
# theirs by default (library_looks.py), the libraries many sites serve unchanged.
LIBRARY_LOOKS_SHARE = 0.15
# Of the other images, drawn in OpenCV's Hershey stroke fonts (cv2.putText: a 3 with a flat top, strokes
# of even width), the faces of many home-made captchas. Without OpenCV 4 these draw TrueType fonts too.
# 0.15 in stages 6-9; 0.2 from stage 10, with more hard-edged glyphs (below).
HERSHEY_SHARE = 0.2
# Of the looks' images (stage 9 on): glyphs drawn with hard edges (looks.Look.aliased), thin strokes as
# cv2.putText draws them by default; about half of those keep them (warp and blur soften the rest).
# Rotation and scaling otherwise antialias every glyph, and the stage-8 reader read such strokes poorly
# (benchmarks/hard_edges.py, docs/accuracy.md). 0.25 in stage 9, which left hard-edged digits still read
# ~10 points below the same blurred: 0.4 from stage 10.
ALIASED_SHARE = 0.4
# Of the looks' images (stage 5 on): cut tight to the text, glyphs touching the edges (many sites crop
# their captchas so; the first glyph may start at the very left), and small text in a large canvas.
CROP_SHARE = 0.2
SMALL_SHARE = 0.1
# Of all images: a frame on some or all sides (Kaptcha draws a 1 px border by default; screenshots and
# page crops leave edges), in the text's colour or any dark or light one.
FRAME_SHARE = 0.12
# Of all images that are not transparent (stage 11 on): saved as JPEG at a random quality and read back,
# as many sites serve their captchas; its blocks and ringing blur thin strokes and colour edges.
JPEG_SHARE = 0.2
JPEG_QUALITY = (25, 90)
# Of the looks' images (stage 11 on): short thin lines in random colours scattered over the background,
# and strike lines or arcs 3-5 px thick (a thick curve through the text); before, lines were 1-3 px.
SEGMENTS_SHARE = 0.15
THICK_LINES_SHARE = 0.15
BACKGROUND_WEIGHTS = {  # how often each background is drawn
    "light": 2,
    "white": 3,
    "dark": 1,
    "mid": 1,
    "gradient": 1.5,
    "texture": 1,
    "transparent": 1.5,
    "fade": 1,  # white to light grey (stage 11 on)
    "pattern": 0.5,  # light stripes, a grid or checks (stage 11 on)
}
# Glyph colours that stay readable on each background (transparent is composited on white). Pastel
# glyphs (light, soft hues; stage 11 on) only on white-ish grounds, where they still differ from them.
COLOURS_FOR = {
    "light": ("dark", "random", "multi", "pastel"),
    "white": ("dark", "random", "multi", "pastel"),
    "fade": ("dark", "random", "multi", "pastel"),
    "pattern": ("dark", "random", "multi"),
    "transparent": ("dark", "random", "multi"),
    "dark": ("light", "random", "multi"),
    "mid": ("random", "multi", "equiluminant", "dark"),
    "gradient": ("random", "multi", "equiluminant", "dark"),
    "texture": ("random", "multi", "equiluminant", "dark"),
}


@functools.cache
def fonts(root: str = FONT_DIR) -> tuple[str, ...]:
    """The font files the recipe draws with, sorted; empty when none of the packages is installed."""
    found = {str(p) for pattern in FONT_GLOBS for p in Path(root).glob(pattern)}
    return tuple(sorted(f for f in found if not any(x in Path(f).name for x in EXCLUDED_FONTS)))


@functools.cache
def more_fonts(roots: tuple[str, ...] = MORE_FONT_ROOTS) -> tuple[str, ...]:
    """The wider families' font files (MORE_FONT_PACKAGES), sorted; empty without them or fontTools
    (matplotlib's dependency), which reads which glyphs a face has."""
    try:
        from fontTools.ttLib import TTFont
    except ImportError:
        return ()
    base = set(fonts())
    needed = set(map(ord, CHARSET))
    families: dict[str, list[str]] = {}
    # Matched by the path below FONT_ROOT, so that where the fonts were carried to matches nothing.
    for path in sorted({str(p) for root in roots for p in Path(root).rglob("*.[ot]tf")}):
        where = "/" + os.path.relpath(path, FONT_ROOT)
        if path in base or "dejavu" in where.lower() or any(x in where for x in EXCLUDED_FONTS):
            continue
        try:
            face = TTFont(path, lazy=True)
            cmap = face.getBestCmap() or {}
            family = face["name"].getDebugName(16) or face["name"].getDebugName(1) or where
        except Exception:  # a file fontTools cannot read is a face the recipe does without
            continue
        if needed <= set(cmap) and not any(x.lower() in f"{family} {where}".lower() for x in MORE_EXCLUDED):
            families.setdefault(re.sub(r"\s+\d+$", "", family), []).append(path)
    return tuple(sorted(p for paths in families.values() for p in paths[:MORE_PER_FAMILY]))


@functools.cache
def hershey_faces() -> tuple[str, ...]:
    """The Hershey font names, when OpenCV 4 (which draws them) is installed; else none."""
    try:
        looks.font_path(next(iter(looks.HERSHEY)))
    except CaptchaCrnnError:
        return ()
    return tuple(looks.HERSHEY)


def label(rng: random.Random) -> str:
    chars = rng.choices([c for c, _ in CHARSETS], [w for _, w in CHARSETS])[0]
    length = rng.choices(range(1, len(LENGTH_WEIGHTS) + 1), LENGTH_WEIGHTS)[0]
    return "".join(rng.choice(chars) for _ in range(length))


def size(text: str, rng: random.Random) -> tuple[int, int]:
    """(width, height) from 60x20 to 400x100, with 0.45-1.2 heights of width per character."""
    height = rng.randint(20, 100)
    width = round(height * (len(text) * rng.uniform(0.45, 1.2) + rng.uniform(0.2, 1.0)))
    if width > 400:
        height, width = max(20, round(height * 400 / width)), 400
    return max(60, width), height


def look(pool: tuple[str, ...], rng: random.Random) -> Look:
    """A random Look: fonts, background and colours, sizes, distortions and noise."""
    background = rng.choices(list(BACKGROUND_WEIGHTS), list(BACKGROUND_WEIGHTS.values()))[0]
    small = rng.random() < SMALL_SHARE
    size_low = rng.uniform(0.2, 0.4) if small else rng.uniform(0.45, 0.75)
    spacing_low = rng.uniform(-0.2, 0.4)
    chance = rng.random
    return Look(
        fonts=tuple(rng.sample(pool, k=min(len(pool), rng.choice((1, 1, 2, 3))))),
        background=background,
        colours=rng.choice(COLOURS_FOR[background]),
        size=(size_low, min(0.95, size_low + rng.uniform(0, 0.2))),
        rotation=rng.uniform(0, 25) if chance() < 0.7 else 0.0,
        baseline=rng.uniform(0, 0.08) if chance() < 0.5 else 0.0,
        spacing=(spacing_low, spacing_low + rng.uniform(0, 0.5)),
        warp=rng.uniform(0, 0.08) if chance() < 0.3 else 0.0,
        blur=rng.uniform(0, 1.2) if chance() < 0.3 else 0.0,
        strike_lines=(0, rng.choice((0, 0, 1, 2, 3, 4))),
        line_width=(3, rng.randint(3, 5)) if chance() < THICK_LINES_SHARE else (1, rng.randint(1, 3)),
        arcs=(0, rng.choice((0, 0, 0, 1, 2))),
        dots=rng.uniform(0, 0.08) if chance() < 0.3 else 0.0,
        outline=chance() < 0.08,
        shadow=chance() < 0.1,
        crop=rng.uniform(0, 0.3) if not small and chance() < CROP_SHARE else None,
        aliased=chance() < ALIASED_SHARE,
        segments=(5, rng.randint(5, 30)) if chance() < SEGMENTS_SHARE else (0, 0),
    )


def draw(text: str, rng: random.Random) -> Image.Image:
    """One captcha of `text` in a random look and size."""
    pool = fonts()
    if not pool:
        raise CaptchaCrnnError(f"the general recipe's fonts are missing: apt-get install {FONT_PACKAGES}")
    if (more := more_fonts()) and rng.random() < MORE_FONTS_SHARE:
        pool = more
    width, height = size(text, rng)
    if rng.random() < LIBRARY_SHARE:
        image = _library(text, width, height, pool, rng)
    elif rng.random() < LIBRARY_LOOKS_SHARE:
        draw_like = rng.choice(list(library_looks.LIBRARIES.values()))
        image = draw_like(text, rng.sample(pool, k=min(len(pool), 2)), rng)
    else:
        faces = hershey_faces() if rng.random() < HERSHEY_SHARE else ()
        image = looks.draw(look(faces or pool, rng), text, width, height, rng)
    image = _framed(image, rng) if rng.random() < FRAME_SHARE else image
    if image.mode != "RGBA" and rng.random() < JPEG_SHARE:
        image = looks.jpeg(image.convert("RGB"), rng.randint(*JPEG_QUALITY))
    return image


def _framed(image: Image.Image, rng: random.Random) -> Image.Image:
    """`image` with a 1-3 px frame on all four sides, or on one to three of them."""
    from PIL import ImageDraw

    dark = rng.random() < 0.7
    colour = tuple(rng.randint(0, 90) if dark else rng.randint(150, 255) for _ in range(3))
    colour += (255,) * (image.mode == "RGBA")  # opaque on a transparent canvas
    width = rng.choice((1, 1, 1, 2, 3))
    sides = ("left", "top", "right", "bottom")
    chosen = sides if rng.random() < 0.6 else rng.sample(sides, k=rng.randint(1, 3))
    framed = image.copy()
    pen = ImageDraw.Draw(framed)
    w, h = framed.size
    boxes = {
        "left": (0, 0, width - 1, h - 1),
        "top": (0, 0, w - 1, width - 1),
        "right": (w - width, 0, w - 1, h - 1),
        "bottom": (0, h - width, w - 1, h - 1),
    }
    for side in chosen:
        pen.rectangle(boxes[side], fill=colour)
    return framed


def _library(text: str, width: int, height: int, pool: tuple[str, ...], rng: random.Random) -> Image.Image:
    from captcha.image import ImageCaptcha

    from captcha_crnn.data.seeded import seeded_captcha

    sizes = [max(10, round(height * f)) for f in (0.7, 0.85, 0.95)]
    writer = ImageCaptcha(width=width, height=height, fonts=rng.sample(pool, k=2), font_sizes=sizes)
    with seeded_captcha(rng):
        return writer.generate_image(text)
