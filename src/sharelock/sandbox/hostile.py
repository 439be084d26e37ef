"""Hostile documents, served by the energy supplier's `hostile-*` accounts (docs/sandbox.md):
what a compromised or careless data source could hand the broker as a "PDF"; and one heavy but
harmless bill (`heavy`), a scan just under the broker's 2 MiB.

Most are built here object by object (`_assemble`), so each carries exactly the one thing it
tests; the others are a real sandbox bill cut short, or with something else glued to it. Each
file is made once and kept (the zip bomb takes a fraction of a second to compress).
"""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from collections.abc import Callable, Mapping
from functools import cache
from types import MappingProxyType

from PIL import Image

_PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
_PAGE_END = b" /Resources << /Font << /F1 5 0 R >> >> >>"
_TEXT = b"BT /F1 24 Tf 72 760 Td (Facture) Tj ET"
_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _stream(data: bytes, entries: bytes = b"") -> bytes:
    return b"<< /Length %d%s >>\nstream\n" % (len(data), entries) + data + b"\nendstream"


def _assemble(objects: list[bytes]) -> bytes:
    """A PDF of these objects (numbered from 1, the catalogue first), with a correct
    cross-reference table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    table = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        table,
    )
    return bytes(out)


def _one_page(catalog: bytes = b"", page: bytes = b"", *more: bytes) -> bytes:
    """One page of text, with extra entries in the catalogue and the page, and more objects
    (numbered from 6)."""
    return _assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R" + catalog + b" >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            _PAGE + page + _PAGE_END,
            _stream(_TEXT),
            _FONT,
            *more,
        ]
    )


def javascript(_valid: bytes) -> bytes:
    """JavaScript run when the file opens (`/OpenAction`)."""
    action = b"<< /Type /Action /S /JavaScript /JS (app.alert\\('hello'\\);) >>"
    return _one_page(b" /OpenAction 6 0 R", b"", action)


def embedded_file(_valid: bytes) -> bytes:
    """A file carried inside the PDF."""
    names = b" /Names << /EmbeddedFiles << /Names [(readme.txt) 6 0 R] >> >>"
    spec = b"<< /Type /Filespec /F (readme.txt) /EF << /F 7 0 R >> >>"
    return _one_page(names, b"", spec, _stream(b"hello", b" /Type /EmbeddedFile"))


def form_and_link(_valid: bytes) -> bytes:
    """A text field (AcroForm) and a link to a web site."""
    widget = b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (name) /Rect [72 700 300 720] >>"
    link = (
        b"<< /Type /Annot /Subtype /Link /Rect [72 650 300 670]"
        b" /A << /S /URI /URI (https://attacker.example/) >> >>"
    )
    return _one_page(b" /AcroForm << /Fields [6 0 R] >>", b" /Annots [6 0 R 7 0 R]", widget, link)


def truncated(valid: bytes) -> bytes:
    """A real bill, cut at 60 %."""
    return valid[: len(valid) * 3 // 5]


def png(_valid: bytes) -> bytes:
    """A PNG image, declared as a PDF."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def zip_polyglot(valid: bytes) -> bytes:
    """A real bill with a ZIP archive after it: a PDF reader and an archive tool each open it."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("payload.txt", "not what it seems")
    return valid + archive.getvalue()


def oversized(_valid: bytes) -> bytes:
    """A valid PDF of 3 MiB (an unused stream of noise), over the broker's 2 MiB."""
    noise = random.Random(3).randbytes(3 * 1024 * 1024)  # noqa: S311 (filler, not a secret)
    return _one_page(b"", b"", _stream(noise))


def many_pages(_valid: bytes) -> bytes:
    """40 pages, more than the broker takes."""
    count = 40
    kids = b" ".join(b"%d 0 R" % (4 + i) for i in range(count))
    pages = [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 3 0 R >>"] * count
    return _assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count,
            _stream(b"0 0 m 10 10 l S"),
            *pages,
        ]
    )


def zip_bomb(_valid: bytes) -> bytes:
    """A page whose content stream is 64 KiB of Flate that inflates to 64 MiB."""
    deflate = zlib.compressobj(9)
    chunk = b" " * (1 << 20)
    packed = b"".join(deflate.compress(chunk) for _ in range(64)) + deflate.flush()
    return _assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
            _stream(packed, b" /Filter /FlateDecode"),
        ]
    )


def huge_image(_valid: bytes) -> bytes:
    """A 100-megapixel image (10,000 by 10,000, as declared) drawn on the page."""
    image = _stream(
        b"\xff\xd8\xff\xe0not really a jpeg",
        b" /Type /XObject /Subtype /Image /Width 10000 /Height 10000"
        b" /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode",
    )
    return _assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
            b" /Resources << /XObject << /Im0 5 0 R >> >> >>",
            _stream(b"q 500 0 0 500 50 300 cm /Im0 Do Q"),
            image,
        ]
    )


def heavy_scan(_valid: bytes) -> bytes:
    """A valid bill of about 1.9 MB: a scanned page, 800 by 800 pixels of uncompressed noise
    (what a photocopier makes of a bill, give or take), under the text."""
    side = 800
    noise = random.Random(8).randbytes(side * side * 3)  # noqa: S311 (filler, not a secret)
    scan = _stream(
        noise,
        b" /Type /XObject /Subtype /Image /Width %d /Height %d" % (side, side)
        + b" /ColorSpace /DeviceRGB /BitsPerComponent 8",
    )
    return _assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >> /XObject << /Scan 6 0 R >> >> >>",
            _stream(b"q 450 0 0 450 72 250 cm /Scan Do Q " + _TEXT),
            _FONT,
            scan,
        ]
    )


HOSTILE: Mapping[str, Callable[[bytes], bytes]] = MappingProxyType(
    {
        "javascript": javascript,
        "embedded-file": embedded_file,
        "form-link": form_and_link,
        "truncated": truncated,
        "png": png,
        "zip": zip_polyglot,
        "oversized": oversized,
        "pages": many_pages,
        "bomb": zip_bomb,
        "image": huge_image,
    }
)
"""Each hostile kind: a `hostile-<kind>` login at the energy supplier, and the file it gets
(made from the valid bill the account would otherwise get)."""

VARIANTS: Mapping[str, Callable[[bytes], bytes]] = MappingProxyType(
    {**HOSTILE, "heavy": heavy_scan}
)
"""Every file an account may get instead of its valid document (`Account.document_variant`)."""


@cache
def document_variant(kind: str, valid: bytes) -> bytes:
    return VARIANTS[kind](valid)
