"""`render_page`: one page of a checked PDF as a PNG, for the review step, drawn by PDFium.

Why PDFium (pypdfium2): it is the renderer of Chromium, fuzzed continuously, and the wheel
carries it (no system library, no `poppler-utils` to install, no process to start per page).
Its build has no JavaScript engine and no XFA, and no form environment is ever made here, so
drawing a page runs nothing the document says.

Bounds, so that a page cannot cost what it likes:
- the page count and sizes were checked before (`check_pdf`);
- the image is drawn at `render_dpi`, lower if that would pass `max_render_pixels` or
  `max_render_side` (a poster-sized page is drawn smaller, never larger than the caps);
- drawing is progressive and PDFium asks between objects whether to pause: past
  `render_seconds` the answer is yes, the drawing is abandoned and `RenderFailed` raised.

Nothing is written to disk: the PDF comes in as bytes, the PNG goes out as bytes.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable

import pypdfium2 as pdfium
import pypdfium2.internal as pdfium_i
import pypdfium2.raw as pdfium_c

from sharelock.documents.errors import RenderFailed
from sharelock.documents.limits import DEFAULT_LIMITS, DocumentLimits
from sharelock.documents.worker import PDFIUM_LOCK

PNG = "image/png"
_WHITE = (255, 255, 255, 255)
_POINTS_PER_INCH = 72.0


def fit_scale(width_pt: float, height_pt: float, limits: DocumentLimits) -> float:
    """Pixels per point: `render_dpi`, lowered to keep within the pixel and side caps."""
    if width_pt <= 0 or height_pt <= 0:
        raise RenderFailed()
    scale = limits.render_dpi / _POINTS_PER_INCH
    scale = min(scale, limits.max_render_side / max(width_pt, height_pt))
    scale = min(scale, math.sqrt(limits.max_render_pixels / (width_pt * height_pt)))
    return scale


def render_page(
    content: bytes,
    page_number: int,
    limits: DocumentLimits = DEFAULT_LIMITS,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """Page `page_number` (from 1) of `content` as PNG bytes. `ValueError` for a page the
    document does not have; `RenderFailed` if PDFium cannot draw it (in time).

    CPU-bound and under PDFium's lock: from async code, use `in_documents_thread`."""
    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(content)
        except pdfium.PdfiumError:
            raise RenderFailed() from None
        try:
            if not 1 <= page_number <= len(document):
                raise ValueError("no such page in the document")
            page = document[page_number - 1]
            try:
                return _draw(page, limits, clock)
            finally:
                page.close()
        finally:
            document.close()


def _draw(page: pdfium.PdfPage, limits: DocumentLimits, clock: Callable[[], float]) -> bytes:
    width_pt, height_pt = page.get_size()
    scale = fit_scale(width_pt, height_pt, limits)
    width = max(1, math.floor(width_pt * scale))
    height = max(1, math.floor(height_pt * scale))
    bitmap = pdfium.PdfBitmap.new_native(width, height, format=pdfium_c.FPDFBitmap_BGR)
    try:
        bitmap.fill_rect(_WHITE, 0, 0, width, height)
        deadline = clock() + limits.render_seconds
        pause = pdfium_c.IFSDK_PAUSE(version=1)
        # PDFium calls this between objects; a True past the deadline pauses the drawing,
        # which is then abandoned below.
        pdfium_i.set_callback(pause, "NeedToPauseNow", lambda _pause: clock() > deadline)
        status = pdfium_c.FPDF_RenderPageBitmap_Start(
            bitmap, page, 0, 0, width, height, 0, pdfium_c.FPDF_ANNOT, pause
        )
        pdfium_c.FPDF_RenderPage_Close(page)
        if status != pdfium_c.FPDF_RENDER_DONE:
            raise RenderFailed("the document page could not be drawn in time")
        out = io.BytesIO()
        bitmap.to_pil().save(out, format="PNG", compress_level=6)
        return out.getvalue()
    finally:
        bitmap.close()
