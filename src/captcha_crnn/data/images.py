"""Image loading and the input-size policy, shared by training and inference.

Every image, whatever its mode (RGBA, LA, palette, 16-bit, float, CMYK), becomes an 8-bit array of the
height and channels (3 for colour, 1 for grey) the model was trained on. Transparent pixels are
composited on white, because transparent-background captchas are common and black would hide dark text.
Colour is kept when the training images have it: captchas often separate glyphs from the background by
hue alone, and a grey conversion can leave a glyph at almost the background's brightness.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import re
import stat
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from captcha_crnn.errors import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    one_line,
)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # Pillow's names for the formats above

ImageSource = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray

# The largest image decoded when the caller sets no limit: far above any captcha, far below the ~90
# megapixels where Pillow only warns. The header is checked first, so a file that claims more is refused
# before any pixel is decoded. The server's --max-pixels has the same default.
DEFAULT_MAX_PIXELS = 4096 * 4096

# Formats never opened: Pillow decodes EPS by running Ghostscript on the file, not for untrusted input.
UNSAFE_FORMATS = frozenset({"EPS"})

# Modes that to_grayscale converts directly; others are converted in open_image, where the file is known.
_PLAIN_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})

# Pillow logs some problems of damaged files (e.g. a TIFF's samples per pixel) besides raising: without a
# handler they would reach stderr through logging's last resort, beside the one-line error.
logging.getLogger("PIL").addHandler(logging.NullHandler())
# Pillow's own warnings (its looser decompression-bomb limit, damaged TIFF tags) would print beside the
# one-line error; the pixel check in open_image decides instead. One filter for Pillow's modules, set once:
# warnings.catch_warnings() around each decode is not thread-safe, and images are decoded in threads.
warnings.filterwarnings("ignore", module=r"PIL\.")


def describe(source: Any) -> str:
    """A short one-line name for error messages."""
    if isinstance(source, (str, Path)):
        return one_line(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    return f"<{type(source).__name__}>"


def open_image(
    source: ImageSource,
    name: str | None = None,
    max_pixels: int | None = None,
    formats: tuple[str, ...] | None = None,
) -> Image.Image:
    """Open and fully decode an image from a path, encoded bytes, a PIL image or a numpy array.

    `max_pixels` (default DEFAULT_MAX_PIXELS) refuses larger images before decoding them: the header is
    read first. `formats` limits which encoded formats are accepted (Pillow names, e.g. IMAGE_FORMATS);
    by default every format Pillow reads except UNSAFE_FORMATS. Whatever the input, the result is a
    loaded image in a mode that `to_grayscale` converts, or an ImageError whose one-line message starts
    with the file's name: missing, not a regular file, empty, unrecognised (UnsupportedImageError),
    damaged (CorruptImageError) or over the pixel limit (ImageTooLargeError).
    """
    name = one_line(name) if name is not None else describe(source)
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, name)
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise UnsupportedImageError(f"{name}: empty data, not an image")
        return _decode(io.BytesIO(bytes(source)), name, limit, formats)
    if not isinstance(source, (str, Path)):
        raise ImageError(f"{name}: cannot read an image from a {type(source).__name__}")
    try:
        info = os.stat(source)
    except (FileNotFoundError, NotADirectoryError):
        raise ImageError(f"{name}: no such file") from None
    except (OSError, ValueError) as exc:  # name too long, embedded NUL byte, permission denied
        raise ImageError(f"{name}: cannot read ({_reason(exc)})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ImageError(f"{name}: is a folder, not an image")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
        raise ImageError(f"{name}: not a regular file, not an image")
    if info.st_size == 0:
        raise UnsupportedImageError(f"{name}: empty file, not an image")
    try:
        fh = open(source, "rb")  # noqa: SIM115 -- closed below, after the image is decoded
    except OSError as exc:
        raise ImageError(f"{name}: cannot read ({_reason(exc)})") from None
    with fh:
        return _decode(fh, name, limit, formats)


def header_pixels(data: bytes) -> int:
    """Width x height from an encoded image's header, without decoding it; 0 when there is none to
    read (what is wrong with such a file is said when it is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                return img.width * img.height
    except Exception:  # any failure here is reported by the real decode
        return 0


def _decode(stream: Any, name: str, max_pixels: int, formats: tuple[str, ...] | None) -> Image.Image:
    allowed = _default_formats() if formats is None else formats
    try:
        with Image.open(stream, formats=list(allowed)) as img:
            _check_size(img, name, max_pixels)  # from the header, before decoding
            img.load()
            _check_size(img, name, max_pixels)  # a few formats learn the size while decoding
            return _plain_mode(img, name)
    except ImageError:
        raise
    except UnidentifiedImageError:
        signed = _signed_as(stream)
        if signed is not None and signed in allowed:  # Pillow gives up on a damaged header the same way
            raise CorruptImageError(f"{name}: corrupt {signed} image (its header cannot be read)") from None
        what = "not an image file (unrecognised format)"
        if formats is not None:
            what = f"not an image in a supported format ({', '.join(f.lower() for f in formats)})"
        raise UnsupportedImageError(f"{name}: {what}") from None
    # Pillow's own limit, checked before ours; its warning, between 1x and 2x that limit, is ignored (see
    # the filter above) unless the program turns warnings into errors (python -W error)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
        claimed = re.search(r"(\d+) pixels", str(exc))
        size = f"{claimed.group(1)} pixels" if claimed else "the image"
        raise ImageTooLargeError(
            f"{name}: refused, {size} is more than the limit of {limit} pixels"
        ) from None
    except MemoryError:
        raise ImageTooLargeError(f"{name}: refused, not enough memory to decode it") from None
    except Exception as exc:  # damaged data makes Pillow's decoders raise many types (OSError, SyntaxError,
        # ValueError, struct.error, EOFError, OverflowError, IndexError, ...): all mean the same to the user
        raise CorruptImageError(f"{name}: corrupt or truncated image ({_reason(exc)})") from None


# The first bytes of the common formats: a file that starts so but that Pillow cannot identify is damaged,
# not of another format.
SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _signed_as(stream: Any) -> str | None:
    """The format whose signature `stream` starts with, if any (WebP: RIFF....WEBP)."""
    try:
        stream.seek(0)
        head = stream.read(12)
    except (OSError, ValueError):
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for sig, fmt in SIGNATURES.items() if head.startswith(sig)), None)


@functools.cache
def _default_formats() -> tuple[str, ...]:
    """Every format Pillow reads, less UNSAFE_FORMATS (loading all of Pillow's plugins once)."""
    Image.init()
    return tuple(f for f in Image.ID if f not in UNSAFE_FORMATS)


def _check_size(img: Image.Image, name: str, max_pixels: int) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"{name}: corrupt image, it claims a size of {width}x{height} pixels")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name}: refused, {width}x{height} is more than the limit of {max_pixels} pixels"
        )


def _plain_mode(img: Image.Image, name: str) -> Image.Image:
    """A decoded copy in a mode to_grayscale handles (palette images become RGBA)."""
    mode = img.mode
    if mode == "P" or mode == "PA":
        return img.convert("RGBA")
    if mode in _PLAIN_MODES or mode.startswith("I;16"):
        return img.copy()
    if mode == "LAB":
        return img.getchannel("L")  # the lightness channel is the grayscale image
    try:
        return img.convert("RGBA" if "A" in mode else "RGB")
    except ValueError:
        raise UnsupportedImageError(f"{name}: pixel mode {mode} is not supported") from None


def _reason(exc: BaseException) -> str:
    """An exception as a short phrase for the end of a one-line message."""
    if isinstance(exc, OSError) and exc.strerror:
        return one_line(exc.strerror.lower(), 200)
    return one_line(str(exc) or type(exc).__name__, 200)


def _from_array(arr: np.ndarray, name: str) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or 0 in arr.shape:
        raise ImageError(f"{name}: expected an HxW, HxWx3 or HxWx4 array")
    if arr.dtype.kind not in "biuf":
        raise ImageError(f"{name}: expected an array of numbers, not {arr.dtype}")
    if arr.dtype == np.uint16:
        arr = _to_uint8(arr, full_scale=65535.0)
    elif arr.dtype != np.uint8:
        arr = _to_uint8(arr)
    mode = "L" if arr.ndim == 2 else ("RGB" if arr.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode)


def _to_uint8(values: np.ndarray, full_scale: float | None = None) -> np.ndarray:
    """Scale to 0..255: by `full_scale` when the bit depth is known (16-bit: 65535), else guess from the
    values (floats in [0, 1], 8-bit range, 16-bit range, or wider integers by their maximum). NaN and
    infinite values (a float image can hold them) count as 0."""
    with np.errstate(all="ignore"):  # signalling NaNs and huge values of a damaged float image
        values = np.asarray(values, dtype=np.float64)
        if not np.isfinite(values).all():
            values = np.where(np.isfinite(values), values, 0.0)
        return _scale_to_uint8(values, full_scale)


def _scale_to_uint8(values: np.ndarray, full_scale: float | None) -> np.ndarray:
    top = float(values.max()) if values.size else 0.0
    if full_scale is not None:
        scale = 255.0 / full_scale
    elif top <= 1.0:
        scale = 255.0
    elif top <= 255.0:
        scale = 1.0
    elif top <= 65535.0:
        scale = 255.0 / 65535.0
    else:
        scale = 255.0 / top
    return np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)


def to_grayscale(img: Image.Image) -> np.ndarray:
    """Any PIL image to an (H, W) uint8 array, alpha composited on white (a faint drawing on a transparent
    canvas: its opacity, see faint_on_white)."""
    img = _flatten(img)
    return img if isinstance(img, np.ndarray) else np.asarray(img.convert("L"), dtype=np.uint8)


def to_pixels(img: Image.Image) -> np.ndarray:
    """Any PIL image to uint8 pixels, alpha composited on white (a faint drawing on a transparent canvas:
    its opacity, see faint_on_white): (H, W, 3) when it has colour, else (H, W).

    Grey images stay one channel (a third of the memory); `InputPolicy.convert` gives either the channels
    the model wants.
    """
    img = _flatten(img)
    if isinstance(img, np.ndarray):
        return img
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return rgb if has_colour(rgb) else np.asarray(img.convert("L"), dtype=np.uint8)


def _flatten(img: Image.Image) -> Image.Image | np.ndarray:
    """High-bit-depth images and faint drawings on a transparent canvas as (H, W) uint8 arrays;
    transparency composited on white; else unchanged."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode.startswith("I;16"):
        return _to_uint8(np.asarray(img), full_scale=65535.0)
    if img.mode in ("I", "F"):
        return _to_uint8(np.asarray(img))
    if img.mode in ("RGBA", "LA") and "transparency" not in img.info and _opaque(img):
        return img.convert("RGB" if img.mode == "RGBA" else "L")  # what compositing would give, 4x faster
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        img = img.convert("RGBA")
        faint = faint_on_white(np.asarray(img))
        if faint is not None:
            return faint
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return img


# A drawing on a transparent canvas (at least CANVAS of the pixels fully clear) whose mean contrast with
# white is under FAINT (of 255) is read from its opacity alone: light glyphs, made for a dark page, would
# vanish on white (docs/accuracy.md, "Light glyphs on a transparent canvas").
FAINT = 64
CANVAS = 0.5


def faint_on_white(rgba: np.ndarray) -> np.ndarray | None:
    """For a drawing on a transparent canvas that composited on white would be faint, its opacity as dark
    ink on white, (H, W) uint8; else None (composite on white). The page colour a transparent captcha was
    made for is unknown; what was drawn is in its opacity, whatever its colour. An opaque card with a few
    clear pixels (rounded corners) is not a transparent canvas: its opacity is all one."""
    alpha = rgba[..., 3].astype(np.float32)
    drawn = float(alpha.sum())
    if drawn == 0 or (rgba[..., 3] == 0).mean() < CANVAS:
        return None
    luminance = rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    contrast = float(((255.0 - luminance) * alpha).sum()) / drawn
    return (255 - rgba[..., 3]).astype(np.uint8) if contrast < FAINT else None


def display_pixels(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8: the image as the model reads it, for showing to a person (report grids, the
    labelling page): transparency on white, and a faint drawing on a transparent canvas as its opacity,
    which on a light page is also the only way a person sees it."""
    pixels = to_pixels(img)
    return pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=-1)


def faint_canvas_png(source: ImageSource) -> bytes | None:
    """A PNG of the image as the model reads it when a browser would show it otherwise (a faint drawing
    on a transparent canvas, invisible on a light page); None when the file shows as it is."""
    img = open_image(source)
    if img.mode not in ("RGBA", "LA", "PA", "RGBa", "La", "P") and "transparency" not in img.info:
        return None
    faint = faint_on_white(np.asarray(img.convert("RGBA")))
    if faint is None:
        return None
    buffer = io.BytesIO()
    Image.fromarray(faint).save(buffer, "PNG")  # what to_pixels gives such an image: its opacity
    return buffer.getvalue()


def _opaque(img: Image.Image) -> bool:
    """Every pixel fully opaque (many captchas are RGBA with no transparent pixel)."""
    return img.getchannel("A").getextrema()[0] == 255


# A pixel whose channels differ by more than this is coloured; an image is colour when more than
# COLOUR_SHARE of its pixels are (JPEG noise in a grey image stays below both).
COLOUR_SPREAD = 24
COLOUR_SHARE = 0.002


def has_colour(pixels: np.ndarray) -> bool:
    if pixels.ndim != 3:
        return False
    # Element-wise over the three planes: 20x faster than numpy's max/min along the short last axis,
    # which was half of the whole preprocessing time.
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)  # uint8: max >= min
    return np.count_nonzero(spread > COLOUR_SPREAD) > COLOUR_SHARE * spread.size


@dataclass(frozen=True)
class InputPolicy:
    """How an image is resized for the network; chosen from the training data, stored in the model.

    Images are scaled to `height` keeping their aspect ratio; the width is rounded to a multiple of the
    network's width stride and kept within [min_width, max_width]. When every training image has the same
    size, min_width == max_width and the policy is a fixed size.
    """

    height: int = 32
    min_width: int = 32
    max_width: int = 512
    width_stride: int = 4  # input pixels per output frame (the network's width downsampling)
    channels: int = 1  # 3: colour (RGB); 1: grey. Models saved before colour input have no field: grey.
    # Width / (width at the image's own aspect ratio): > 1 widens glyphs that are packed too closely for
    # the CTC frames (see stretch_for). Models saved before this field have none: 1.
    stretch: float = 1.0
    # Cut each image to its text (textbox.text_box) before resizing, where the text fills a small part of
    # it: small glyphs keep their detail at the network's height. Models saved before this field: False.
    crop: bool = False

    def cut(self, pixels: np.ndarray) -> np.ndarray:
        """The part of `pixels` the network reads: the text's box when `crop` finds one, else all."""
        if not self.crop:
            return pixels
        from captcha_crnn.data.textbox import text_box

        box = text_box(pixels)
        return pixels if box is None else pixels[box[1] : box[3], box[0] : box[2]]

    @property
    def fixed_width(self) -> int | None:
        return self.min_width if self.min_width == self.max_width else None

    def width_for(self, size: tuple[int, int]) -> int:
        w, h = size
        scaled = w * self.height / max(h, 1) * self.stretch
        width = round(scaled / self.width_stride) * self.width_stride
        return max(self.min_width, min(self.max_width, width))

    def frames(self, width: int) -> int:
        """Output frames (CTC time steps) for an input of this width."""
        return width // self.width_stride

    def convert(self, pixels: np.ndarray) -> np.ndarray:
        """(h, w) or (h, w, 3) uint8 -> the model's channels: (h, w) for grey, (h, w, 3) for colour."""
        if self.channels == 1 and pixels.ndim == 3:
            return np.asarray(Image.fromarray(pixels).convert("L"), dtype=np.uint8)
        if self.channels == 3 and pixels.ndim == 2:
            return np.repeat(pixels[:, :, None], 3, axis=2)
        return pixels

    def resize(self, pixels: np.ndarray) -> np.ndarray:
        """(h, w[, 3]) uint8 -> (height, width_for[, 3]) uint8 in the model's channels."""
        pixels = self.cut(self.convert(pixels))
        h, w = pixels.shape[:2]
        width = self.width_for((w, h))
        if (w, h) == (width, self.height):
            return pixels
        return np.asarray(Image.fromarray(pixels).resize((width, self.height), Image.BILINEAR))

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputPolicy:
        """The policy a model file records; ValueError when it could not have been written by train."""
        fields = cls.__dataclass_fields__
        if not isinstance(data.get("crop", False), bool):
            raise ValueError(f"input policy with crop {data['crop']!r}")
        kinds = {"stretch": float, "crop": bool}
        policy = cls(**{k: kinds.get(k, int)(v) for k, v in data.items() if k in fields})
        if not 0.1 <= policy.stretch <= 10:
            raise ValueError(f"input policy with stretch {policy.stretch}")
        if not (policy.height > 0 and 0 < policy.min_width <= policy.max_width and policy.width_stride > 0):
            raise ValueError(f"impossible input policy {policy.to_dict()}")
        if policy.channels not in (1, 3):
            raise ValueError(f"input policy with {policy.channels} channels")
        return policy


DEFAULT_HEIGHT = 32


# Output frames per label character that the default stretch aims for: overlapping glyphs need room to
# be told apart, and past ~6 more frames gained little (docs/accuracy.md, "Input width").
FRAMES_PER_CHAR = 6
MAX_STRETCH = 3.0  # beyond this the glyphs' shapes change more than the frames help


def stretch_for(
    sizes: Sequence[tuple[int, int]],
    lengths: Sequence[int],
    height: int = DEFAULT_HEIGHT,
    width_stride: int = 4,
    frames_per_char: int = FRAMES_PER_CHAR,
) -> float:
    """How much wider than its aspect ratio to make each image, so that 9 in 10 training images (sizes
    and label lengths side by side) get `frames_per_char` output frames per character; 1 to MAX_STRETCH.

    Scaled to height 32, a 160x60 captcha of 6 characters keeps 85 pixels: 21 frames, 3.5 per
    character, too few to tell overlapping glyphs apart, while the glyphs themselves still have detail
    across the width to spare.
    """
    needs = sorted(
        frames_per_char * width_stride * n / max(w * height / max(h, 1), 1.0)
        for (w, h), n in zip(sizes, lengths)
    )
    if not needs:
        return 1.0
    need = needs[int(0.9 * (len(needs) - 1))]
    return round(min(MAX_STRETCH, max(1.0, need)), 2)


def choose_policy(
    sizes: Iterable[tuple[int, int]],
    height: int = DEFAULT_HEIGHT,
    width_stride: int = 4,
    channels: int = 1,
    stretch: float = 1.0,
) -> InputPolicy:
    """Pick the input size from the training images' (width, height) sizes.

    `train` picks the height from the text's (training/plan.py, _height). A data set
    of one size gets one fixed width; a mixed one keeps aspect ratios, with room for 25% wider images
    than any seen in training.
    """
    sizes = list(sizes)
    if not sizes:
        raise ValueError("no image sizes to choose an input policy from")
    probe = InputPolicy(height, width_stride, 1 << 16, width_stride, channels, stretch)
    widths = sorted(probe.width_for(s) for s in sizes)
    if widths[0] == widths[-1]:
        return InputPolicy(height, widths[0], widths[0], width_stride, channels, stretch)
    max_width = math.ceil(widths[-1] * 1.25 / width_stride) * width_stride
    min_width = max(width_stride, widths[0] // 2 // width_stride * width_stride)
    return InputPolicy(height, min_width, max_width, width_stride, channels, stretch)


def load_for_model(
    source: ImageSource,
    policy: InputPolicy,
    name: str | None = None,
    max_pixels: int | None = None,
    formats: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Open, convert and resize one image: the single preprocessing path for training and inference."""
    img = open_image(source, name, max_pixels, formats)
    return policy.resize(to_grayscale(img) if policy.channels == 1 else to_pixels(img))


def stack_batch(
    pixels: Sequence[np.ndarray], policy: InputPolicy, width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(H, w_i[, 3]) uint8 images -> (B, C, H, W) float32 in [0, 1] plus each image's frame count.

    Images narrower than `width` (default: the widest) are padded on the right by repeating their last
    column, which continues the background whatever its colour.
    """
    width = max(width or 0, *(p.shape[1] for p in pixels))
    stacked = np.empty((len(pixels), pixels[0].shape[0], width, *pixels[0].shape[2:]), dtype=np.uint8)
    for row, p in zip(stacked, pixels):
        w = p.shape[1]
        row[:, :w] = p
        row[:, w:] = p[:, w - 1 : w]  # np.pad(mode="edge"), without its per-call overhead
    lengths = np.array([policy.frames(p.shape[1]) for p in pixels], dtype=np.int64)
    batch = stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)
    out = np.empty(batch.shape, dtype=np.float32)
    np.multiply(batch, np.float32(1 / 255), out=out)  # one pass, straight into a contiguous array
    return out, lengths
