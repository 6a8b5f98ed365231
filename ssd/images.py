"""The one image loader of the project (the only module that opens images with Pillow):
uploads, dataset images and command-line images all come through here as a clean RGB
`PIL.Image`.

`load_image` accepts a path, bytes, or a file-like object (e.g. an upload), and returns
RGB whatever the Pillow mode (transparent images are composited on white, 16-bit and
float images rescaled to 8 bits), the first frame of an animation, and tiny images
upscaled. Anything unusable raises `ImageError` with a one-line reason that names the source.

The EXIF rule (`apply_exif`): a dataset image is read as stored (`apply_exif=False`),
because VOC / COCO boxes are in the stored pixel frame, as torchvision's dataset readers
read them; an upload or a command-line image without ground truth is shown as a person
sees it (`apply_exif=True`, the default: EXIF orientation applied).
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 40_000_000  # refuse larger images (decompression bombs, memory)
DEFAULT_MIN_SIDE = 32  # upscale smaller images so the shorter side is at least this

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")


class ImageError(ValueError):
    """An input that cannot be read as an image; the message names it and says why."""


def _read_source(src) -> tuple[bytes, str]:
    """(bytes, display name) of a path, bytes-like or file-like source."""
    if isinstance(src, (str, os.PathLike)):
        p = Path(src)
        if not p.exists():
            raise ImageError(f"{p}: file does not exist")
        if not p.is_file():
            raise ImageError(f"{p}: not a file")
        try:
            return p.read_bytes(), str(p)
        except OSError as e:
            raise ImageError(f"{p}: cannot read file: {e}") from e
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "image bytes"
    if hasattr(src, "read"):
        name = str(getattr(src, "name", "<upload>"))
        try:
            if hasattr(src, "seek"):
                src.seek(0)
            data = src.read()
        except OSError as e:
            raise ImageError(f"{name}: cannot read: {e}") from e
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError(f"{name}: file-like object must be opened in binary mode")
        return bytes(data), name
    raise ImageError(f"cannot read an image from a {type(src).__name__}; give a path, bytes or a binary file")


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB. Transparency is composited on white."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        # 16-bit / 32-bit / float: rescale to 0..255 (a plain convert would clip to white).
        arr = np.asarray(im).astype(np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        else:
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        grey = Image.fromarray(np.nan_to_num(arr).clip(0, 255).round().astype(np.uint8), mode="L")
        return grey.convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "1":
        return im.convert("L").convert("RGB")
    return im.convert("RGB")  # L, P, CMYK, YCbCr, LAB, HSV, ...


def load_image(
    src: str | os.PathLike | bytes | BinaryIO,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
    name: str | None = None,
    apply_exif: bool = True,
) -> Image.Image:
    """Read an image as RGB.

    Args:
        src: a path, bytes, or a binary file-like object (an upload).
        max_pixels: refuse images with more pixels than this (width x height).
        min_side: upscale (bilinear) so that the shorter side is at least this (1: never).
        name: the name errors give the source (an upload's file name); default: the path,
            or "image bytes" for bytes.
        apply_exif: turn the image by its EXIF orientation, as a person sees it (uploads,
            CLI images); False: the pixels as stored (dataset images, whose boxes are in
            the stored frame).
    Returns:
        A loaded `PIL.Image` in mode "RGB", first frame only.
    Raises:
        ImageError: missing/empty/unreadable file, not an image, truncated or corrupt
        data, too many pixels.
    """
    data, source_name = _read_source(src)
    name = name or source_name
    if len(data) == 0:
        raise ImageError(f"{name}: empty file (0 bytes)")
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: too many pixels (limit {max_pixels:,}): {e}") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{name}: not an image (format not recognised)") from e
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{name}: cannot open image: {e}") from e
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError(f"{name}: image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"{name}: too many pixels, {w}x{h} = {w * h:,} > limit {max_pixels:,}")
    try:
        im.seek(0)  # first frame of an animation
        im.load()
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: too many pixels (limit {max_pixels:,}): {e}") from e
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(f"{name}: truncated or corrupt image data ({im.format}): {e}") from e
    if apply_exif:
        try:
            im = ImageOps.exif_transpose(im) or im
        except Exception:  # a broken EXIF block must not lose the picture; keep it unrotated
            pass
    try:
        rgb = _to_rgb(im)
    except (OSError, ValueError) as e:
        raise ImageError(f"{name}: cannot convert mode {im.mode} to RGB: {e}") from e
    short = min(rgb.size)
    if short < min_side:
        scale = min_side / short
        size = (max(min_side, math.ceil(rgb.width * scale)), max(min_side, math.ceil(rgb.height * scale)))
        if size[0] * size[1] > max_pixels:
            raise ImageError(f"{name}: {rgb.width}x{rgb.height} is too elongated to upscale to {min_side} px")
        rgb = rgb.resize(size, Image.Resampling.BILINEAR)
    if rgb is im:
        rgb = rgb.copy()  # detach from the file object
    return rgb


def stored_image_hw(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of the image file `path` as stored (EXIF orientation not applied), from its
    header alone. Raises ImageError naming the file when it is missing or not an image."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{p}: file does not exist")
    try:
        with Image.open(p) as im:
            w, h = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{p}: not an image ({e})") from None
    return h, w


def is_image_path(path: str | os.PathLike) -> bool:
    """True if the file name has a common image suffix (for expanding folders)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
