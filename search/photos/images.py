"""Turn whatever a user or a dataset hands us into a clean RGB PIL image, or a clear error."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from search import config
from search.errors import BadImageError

Image.MAX_IMAGE_PIXELS = config.MAX_IMAGE_PIXELS

try:  # photos straight from a phone: HEIC/HEIF (AVIF is native in Pillow >= 11.3)
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is in requirements.txt
    pass


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode (L, LA, P, RGBA, CMYK, I;16, F, ...) to 8-bit RGB."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        img = Image.fromarray(((arr - lo) * scale).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def normalise(img: Image.Image) -> Image.Image:
    """Validate a decoded image and return it upright, 8-bit RGB, first frame only."""
    if getattr(img, "is_animated", False) and getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    w, h = img.size
    if w * h > config.MAX_IMAGE_PIXELS:
        raise BadImageError(
            f"Image is too large ({w}x{h} pixels); the limit is {config.MAX_IMAGE_PIXELS:,} pixels."
        )
    if min(w, h) < config.MIN_IMAGE_SIDE:
        raise BadImageError(
            f"Image is too small ({w}x{h} pixels); use a photo at least "
            f"{config.MIN_IMAGE_SIDE}x{config.MIN_IMAGE_SIDE}."
        )
    try:
        img = ImageOps.exif_transpose(img)
        img.load()
        return _to_rgb(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"The image could not be decoded ({exc}).") from exc


def open_image(source: str | Path | bytes | BinaryIO | Image.Image) -> Image.Image:
    """Open a path, bytes, file object or PIL image as a normalised RGB image."""
    if isinstance(source, Image.Image):
        return normalise(source)
    name = str(source) if isinstance(source, (str, Path)) else "upload"
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            img.load()
    except FileNotFoundError as exc:
        raise BadImageError(f"No such file: {name}") from exc
    except IsADirectoryError as exc:
        raise BadImageError(f"{name} is a directory, not an image file.") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(
            f"Image is too large; the limit is {config.MAX_IMAGE_PIXELS:,} pixels."
        ) from exc
    except UnidentifiedImageError as exc:
        raise BadImageError(
            f"{Path(name).name} is not an image PIL can read (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF)."
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"{Path(name).name} could not be decoded: {exc}") from exc
    return normalise(img)


def thumbnail(img: Image.Image, side: int = config.THUMBNAIL_SIZE) -> Image.Image:
    """A copy whose longest side is at most `side` pixels."""
    thumb = img.copy()
    thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
    return thumb


def is_readable_jpeg(path: Path) -> bool:
    """Cheap check that a thumbnail file is there and starts and ends like a JPEG (no decoding)."""
    try:
        with open(path, "rb") as f:
            head = f.read(3)
            f.seek(-2, 2)
            return head == b"\xff\xd8\xff" and f.read(2) == b"\xff\xd9"
    except OSError:
        return False


def placeholder(text: str, size: tuple[int, int] = (256, 192)) -> Image.Image:
    """A plain grey picture that says what is missing."""
    from PIL import ImageDraw

    img = Image.new("RGB", size, (205, 205, 205))
    ImageDraw.Draw(img).text((12, size[1] // 2 - 6), text, fill=(60, 60, 60))
    return img
