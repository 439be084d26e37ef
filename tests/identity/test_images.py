"""Hostile and broken images: each is one typed `ImageRejected` with a fixed message, decoded
no further than needed, and nothing of it kept."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from sharelock.identity import (
    DOCUMENT_LIMITS,
    FRAME_LIMITS,
    ImageRejected,
    RejectionReason,
    decode_image,
)
from tests.identity.conftest import Photo
from tests.support.specimens import jpeg, png


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header declares `width` x `height` grey pixels, all zero: 100 megapixels
    compress to about 100 kB (the classic decompression bomb)."""
    rows = zlib.compressobj(9)
    body = b"".join(rows.compress(b"\x00" * (width + 1)) for _ in range(height)) + rows.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def jpeg_declaring(source: bytes, width: int, height: int) -> bytes:
    """`source` with its frame header (SOF0) rewritten to declare another size."""
    at = source.index(b"\xff\xc0")
    return source[: at + 5] + struct.pack(">HH", height, width) + source[at + 9 :]


@pytest.fixture(scope="module")
def small_jpeg(photos: dict[str, Photo]) -> bytes:
    return jpeg(photos["astronaut"])


def _rejected(data: bytes, reason: RejectionReason, source: str = "document") -> ImageRejected:
    with pytest.raises(ImageRejected) as raised:
        decode_image(data, DOCUMENT_LIMITS, source)
    assert raised.value.reason is reason and raised.value.source == source
    assert str(raised.value) == f"{source}: image rejected ({reason.value})"
    assert raised.value.__cause__ is None  # the decoder's own message is not passed on
    return raised.value


def test_a_jpeg_and_a_png_decode_to_rgb(photos: dict[str, Photo]) -> None:
    for encoded in (jpeg(photos["obama"]), png(photos["obama"])):
        image = decode_image(encoded, FRAME_LIMITS, "frame 1")
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert max(image.shape[:2]) <= FRAME_LIMITS.work_side


def test_a_large_photo_is_scaled_to_the_working_size() -> None:
    big = Image.new("RGB", (4000, 3000), (120, 130, 140))
    image = decode_image(jpeg(big), DOCUMENT_LIMITS, "document")
    assert image.shape == (1500, 2000, 3)


def test_exif_orientation_is_applied() -> None:
    wide = Image.new("RGB", (400, 200), (200, 10, 10))
    exif = wide.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    buffer = io.BytesIO()
    wide.save(buffer, "JPEG", exif=exif)
    assert decode_image(buffer.getvalue(), FRAME_LIMITS, "frame 1").shape[:2] == (400, 200)


def test_a_truncated_jpeg(small_jpeg: bytes) -> None:
    _rejected(small_jpeg[: len(small_jpeg) // 2], RejectionReason.UNDECODABLE)


def test_a_truncated_png(photos: dict[str, Photo]) -> None:
    encoded = png(photos["astronaut"])
    _rejected(encoded[: len(encoded) // 2], RejectionReason.UNDECODABLE)


def test_a_100_megapixel_jpeg_is_refused_from_its_header(small_jpeg: bytes) -> None:
    _rejected(jpeg_declaring(small_jpeg, 10_000, 10_000), RejectionReason.TOO_MANY_PIXELS)


def test_a_png_bomb_is_refused_before_decompression() -> None:
    bomb = png_bomb(10_000, 10_000)
    assert len(bomb) < DOCUMENT_LIMITS.max_bytes  # small on the wire: the pixel cap stops it
    _rejected(bomb, RejectionReason.TOO_MANY_PIXELS)


def test_too_many_bytes() -> None:
    _rejected(b"\xff\xd8\xff" + b"\x00" * DOCUMENT_LIMITS.max_bytes, RejectionReason.TOO_LARGE)


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n1 0 obj << /JavaScript >> endobj",
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        b"PK\x03\x04 a zip",
        b"",
    ],
)
def test_other_formats_are_refused(data: bytes) -> None:
    _rejected(data, RejectionReason.UNSUPPORTED_FORMAT)


def test_a_polyglot_jpeg_with_a_zip_after_it_decodes_as_the_image_alone(small_jpeg: bytes) -> None:
    # Bytes after the image's end are never read: the decoded pixels are the image's.
    polyglot = small_jpeg + b"PK\x03\x04" + b"\x00" * 200
    assert (
        decode_image(polyglot, FRAME_LIMITS, "frame 1").shape
        == decode_image(small_jpeg, FRAME_LIMITS, "frame 1").shape
    )


def test_garbage_after_a_jpeg_magic(small_jpeg: bytes) -> None:
    _rejected(small_jpeg[:20] + bytes(range(256)) * 40, RejectionReason.UNDECODABLE)


def test_the_error_names_the_frame_not_its_content(small_jpeg: bytes) -> None:
    error = _rejected(small_jpeg[:300], RejectionReason.UNDECODABLE, source="frame 3")
    assert "frame 3" in str(error)


def test_over_our_cap_below_pillows_own(small_jpeg: bytes) -> None:
    _rejected(jpeg_declaring(small_jpeg, 8_000, 5_000), RejectionReason.TOO_MANY_PIXELS)
