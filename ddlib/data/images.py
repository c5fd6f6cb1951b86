"""Image files to uint8 arrays (C, H, W): decoding with PIL, resizing to a square, and converting between
greyscale and RGB, one way for the in-memory and the streamed loaders (so both give the same pixels)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ddlib.data.core import UnreadableDataError

__all__ = ["IMAGE_SUFFIXES", "GREY_MODES", "is_image_name", "decode", "header", "to_channels", "majority_channels"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
GREY_MODES = ("L", "LA", "1", "I;16", "I")  # decoded as one channel; every other mode as RGB


def is_image_name(name: str) -> bool:
    """Whether a file name ends in one of :data:`IMAGE_SUFFIXES` (any case)."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def _unreadable(where: str, e: Exception) -> UnreadableDataError:
    why = " ".join(str(e).split(" <_io.BytesIO")[0].split())  # PIL names the buffer, not the file: named here
    return UnreadableDataError(f"imagefolder: cannot decode the image {where} ({type(e).__name__}: {why}); the "
                               "file is corrupt, truncated or not an image: replace it with a good copy or delete it "
                               "(or load with skip_unreadable=True to skip such files, counted in ds.report)")


def _open(data: bytes | Path):  # noqa: ANN202 - a PIL image
    from PIL import Image

    return Image.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data)


def header(data: bytes | Path, where: str) -> tuple[int, tuple[int, int]]:
    """(channels, (width, height)) from an image file's header, without decoding its pixels."""
    try:
        with _open(data) as img:
            return (1 if img.mode in GREY_MODES else 3), img.size
    except Exception as e:  # noqa: BLE001 - PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        raise _unreadable(where, e) from e


def decode(data: bytes | Path, image_size: int | None, where: str, channels: int | None = None) -> np.ndarray:
    """An image file (its bytes or path) as uint8 (C, H, W).

    The image keeps its own channel count (1 for greyscale modes, else 3) unless ``channels`` is given;
    with ``image_size`` its shorter side is resized to it (bilinear) and the centre square cropped. A file
    PIL cannot decode is an :class:`UnreadableDataError` naming ``where``.
    """
    from PIL import Image

    try:
        with _open(data) as src:
            src.load()  # decode now: a truncated file fails here, with its name, not later
            img = src.convert("L" if src.mode in GREY_MODES else "RGB")
    except Exception as e:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError, ...: all mean unreadable
        raise _unreadable(where, e) from e
    if image_size is not None and img.size != (image_size, image_size):
        w, h = img.size
        s = image_size / min(w, h)
        img = img.resize((max(image_size, round(w * s)), max(image_size, round(h * s))), Image.BILINEAR)
        w, h = img.size
        left, top = (w - image_size) // 2, (h - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return arr if channels is None else to_channels(arr, channels)


def to_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (C, H, W) with ``channels`` channels: greyscale repeated to RGB, RGB to PIL's luma (ITU-R 601-2)."""
    if arr.shape[0] == channels:
        return arr
    if channels == 3:
        return np.repeat(arr, 3, axis=0)
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0))).convert("L"), dtype=np.uint8)[None]


def majority_channels(counts: dict[int, int]) -> int:
    """The channel count most images have (1 or 3); RGB on a tie, so that no colour is lost."""
    return 1 if counts.get(1, 0) > counts.get(3, 0) else 3
