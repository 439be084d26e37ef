"""PDF files made by the tests, independently of the sandbox's (`sharelock.sandbox.hostile`):
a bug in the sandbox's files must not hide behind the same bug here.

`assemble(objects)` writes the objects (numbered from 1, the catalogue first) with a correct
cross-reference table; `one_page(catalog=…, page=…, extra objects from 6)` is a page of text
with entries added to its catalogue and page dictionaries. `fpdf_document(pages)` is an
ordinary generated document.
"""

from __future__ import annotations

import io
import zlib

from fpdf import FPDF
from PIL import Image

PLANTED = "Planted-Secret-4f1d"
"""Text inside every test document: it must never reach an error message or a log."""


def stream(data: bytes, entries: bytes = b"") -> bytes:
    return b"<< /Length %d%s >>\nstream\n" % (len(data), entries) + data + b"\nendstream"


def assemble(objects: list[bytes], *, trailer: bytes = b"", between: bytes = b"") -> bytes:
    """A PDF of `objects`; `between` is written after the objects, outside any
    cross-reference (what a repairing reader may still find)."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    out += between
    table = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        trailer,
        table,
    )
    return bytes(out)


def one_page(
    catalog: bytes = b"",
    page: bytes = b"",
    *more: bytes,
    media_box: bytes = b"[0 0 595 842]",
    content: bytes = b"",
    resources: bytes = b"",
    between: bytes = b"",
) -> bytes:
    text = b"BT /F1 18 Tf 72 760 Td (" + PLANTED.encode() + b") Tj ET" + content
    return assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R" + catalog + b" >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox " + media_box + b" /Contents 4 0 R"
            b" /Resources << /Font << /F1 5 0 R >>" + resources + b" >>" + page + b" >>",
            stream(text),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            *more,
        ],
        between=between,
    )


def fpdf_document(pages: int = 1, *, link_to_last: bool = False) -> bytes:
    """A plain generated document; with `link_to_last`, a link on page 1 to the last page
    (an internal link, which is allowed)."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=14)
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.cell(text=f"{PLANTED} page {number}")
    if link_to_last:
        target = pdf.add_link(page=pages)
        pdf.page = 1
        pdf.link(10, 10, 50, 10, target)
        pdf.page = pages
    return bytes(pdf.output())


def deflated(size: int, byte: bytes = b" ") -> bytes:
    """`size` bytes of one byte, deflated (a bomb when `size` is large)."""
    packer = zlib.compressobj(9)
    chunk = byte * (1 << 20)
    whole, rest = divmod(size, len(chunk))
    return (
        b"".join(packer.compress(chunk) for _ in range(whole))
        + packer.compress(byte * rest)
        + packer.flush()
    )


def png_bytes(width: int = 32, height: int = 32) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()
