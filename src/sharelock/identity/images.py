"""Decoding untrusted images: JPEG or PNG only, bounded in bytes and in pixels, decoded once.

The bounds are checked in this order, each before any work it protects: the byte count before
parsing, the format from the magic bytes before choosing a decoder, the declared dimensions from
the header before decoding a pixel (a 100-megapixel image or a PNG bomb stops there), and a
truncated or corrupt stream fails inside the decoder. Each refusal is one `ImageRejected`, whose
message names the input and the reason and nothing of the content; the bytes are not kept.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from sharelock.identity.errors import ImageRejected, RejectionReason

RgbImage = NDArray[np.uint8]  # height x width x 3, C-contiguous

_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int  # width x height as declared in the header
    work_side: int  # the longest side the engine works on; larger images are scaled down


DOCUMENT_LIMITS = ImageLimits(max_bytes=8 * 1024 * 1024, max_pixels=30_000_000, work_side=2000)
FRAME_LIMITS = ImageLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000, work_side=960)


def _format_of(data: bytes) -> str | None:
    for magic, name in _MAGIC.items():
        if data.startswith(magic):
            return name
    return None


def decode_image(data: bytes, limits: ImageLimits, source: str) -> RgbImage:
    """`data` as an RGB array no larger than `limits.work_side`, or `ImageRejected`."""
    if len(data) > limits.max_bytes:
        raise ImageRejected(source, RejectionReason.TOO_LARGE)
    kind = _format_of(data)
    if kind is None:
        raise ImageRejected(source, RejectionReason.UNSUPPORTED_FORMAT)
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb guard warns far above our cap; make it an error all the same.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[kind]) as opened:
                width, height = opened.size
                if width <= 0 or height <= 0 or width * height > limits.max_pixels:
                    raise ImageRejected(source, RejectionReason.TOO_MANY_PIXELS)
                opened.load()  # a truncated stream raises here (LOAD_TRUNCATED_IMAGES is off)
                upright = ImageOps.exif_transpose(opened)  # phone photos carry their rotation
                rgb = upright.convert("RGB")
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard fired while reading the header: far over our cap too.
        raise ImageRejected(source, RejectionReason.TOO_MANY_PIXELS) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError):
        # `from None`: the decoder's message is not ours to pass on.
        raise ImageRejected(source, RejectionReason.UNDECODABLE) from None
    if max(rgb.size) > limits.work_side:
        rgb.thumbnail((limits.work_side, limits.work_side), Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
