"""`check_pdf`: is this file a plain PDF the broker may pass on? Yes (a `CheckedDocument`), or
a `DocumentRefused` saying why.

In order, each step cheaper than the next:

1. the declared type is a PDF, the file is neither empty nor over `max_bytes`;
2. the bytes are a PDF (header at the first byte), not something else declared as one, not
   also a ZIP (polyglot), and not cut short (`%%EOF` at the end);
3. pypdf parses it in strict mode, under decompression caps of our own (`_PYPDF_CAPS`), and
   it is not encrypted, with 1 to `max_pages` pages;
4. every object is inspected (`inspect.py`): no active content, no stream, image or page past
   its cap; the raw bytes are searched too, for objects outside the cross-reference table;
5. PDFium, which draws the pages for review, opens it too and must agree: the same number of
   pages, no form, no JavaScript, no attachment (a second parser, so that a file one of them
   reads differently cannot slip through), page sizes within bounds.

pypdf's warnings are silenced: they can quote what the file holds, and the broker's logs must
not carry a person's data. The error says why, never what.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from pypdf import PdfReader, apply_configuration
from pypdf.errors import FileNotDecryptedError, LimitReachedError

from sharelock.documents.errors import (
    DecompressionLimit,
    DocumentRefused,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    MalformedDocument,
    PolyglotDocument,
    Reason,
    TooComplex,
    TooManyPages,
    TruncatedDocument,
    TypeMismatch,
    UnsupportedType,
    refusal_for,
)
from sharelock.documents.files import CheckedDocument
from sharelock.documents.inspect import Inspection, raw_findings
from sharelock.documents.limits import DEFAULT_LIMITS, PDF, DocumentLimits
from sharelock.documents.sniff import has_eof_marker, has_pdf_header, is_also_zip
from sharelock.documents.worker import PDFIUM_LOCK

logging.getLogger("pypdf").setLevel(logging.CRITICAL)


def _pypdf_caps(limits: DocumentLimits) -> dict[str, Any]:
    """pypdf's own limits, tightened to ours (its defaults allow 75 MB per stream)."""
    per_stream = limits.max_stream_bytes
    return {
        "maximum_declared_stream_length": limits.max_bytes,
        "zlib_maximum_output_length": per_stream,
        "lzw_maximum_output_length": per_stream,
        "run_length_maximum_output_length": per_stream,
        "brotli_maximum_output_length": per_stream,
        "jbig2_maximum_output_length": per_stream,
        "array_based_stream_maximum_output_length": per_stream,
        "image_maximum_buffer_size": per_stream,
        "stream_decoding_work_maximum_length": 2 * per_stream,
        "page_tree_maximum_entries": 4 * limits.max_pages,
        "jbig2dec_binary": None,  # never run an external program on a stranger's file
    }


def media_type_of(declared: str | None) -> str:
    """`application/pdf; charset=…` → `application/pdf`."""
    return (declared or "").split(";", 1)[0].strip().lower()


def check_pdf(
    content: bytes, declared_type: str | None, limits: DocumentLimits = DEFAULT_LIMITS
) -> CheckedDocument:
    """The file as a `CheckedDocument`, or `DocumentRefused` (a subclass per reason).

    CPU-bound (tens of milliseconds for a page or two) and uses PDFium under its lock: from
    async code, call it through `in_documents_thread`."""
    if media_type_of(declared_type) != PDF:
        raise UnsupportedType()
    if not content:
        raise EmptyDocument()
    if len(content) > limits.max_bytes:
        raise DocumentTooLarge()
    if not has_pdf_header(content):
        raise TypeMismatch()
    if is_also_zip(content):
        raise PolyglotDocument()
    if not has_eof_marker(content):
        raise TruncatedDocument()
    findings = raw_findings(content)
    pages = _inspect(content, limits, findings)
    if findings:
        raise refusal_for(frozenset(findings))
    _cross_check(content, pages, limits)
    return CheckedDocument(content=content, pages=pages)


def _inspect(content: bytes, limits: DocumentLimits, findings: set[Reason]) -> int:
    """pypdf's reading: the number of pages; adds what the walk finds to `findings`."""
    with apply_configuration(**_pypdf_caps(limits)):
        try:
            reader = PdfReader(
                io.BytesIO(content), strict=True, xref_stream_maximum_entries=limits.max_objects
            )
            if reader.is_encrypted:
                raise EncryptedDocument()
            pages = len(reader.pages)
            if pages == 0:
                raise MalformedDocument()
            if pages > limits.max_pages:
                raise TooManyPages()
            findings |= Inspection(reader, limits).run()
        except DocumentRefused:
            raise
        except LimitReachedError as limit:
            # pypdf's limits: inflating a stream (a bomb in an object or cross-reference
            # stream, met while parsing) or the structure (page tree, arrays, entries).
            inflating = any(word in str(limit).lower() for word in ("decompress", "decod"))
            raise (DecompressionLimit() if inflating else TooComplex()) from None
        except FileNotDecryptedError:
            raise EncryptedDocument() from None
        except RecursionError:
            raise TooComplex() from None
        except Exception:
            # A hostile file can make a parser raise anything; what it raised is not said
            # (its message may quote the file), only that the file is not a readable PDF.
            raise MalformedDocument() from None
    return pages


def _cross_check(content: bytes, pages: int, limits: DocumentLimits) -> None:
    """PDFium's reading must agree with pypdf's (see the module's docstring)."""
    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(content)
        except pdfium.PdfiumError:
            raise MalformedDocument() from None
        try:
            if len(document) != pages:
                raise MalformedDocument()
            found: set[Reason] = set()
            if document.get_formtype() != pdfium_c.FORMTYPE_NONE:
                found.add(Reason.FORM)
            if pdfium_c.FPDFDoc_GetJavaScriptActionCount(document) != 0:
                found.add(Reason.JAVASCRIPT)
            if pdfium_c.FPDFDoc_GetAttachmentCount(document) != 0:
                found.add(Reason.EMBEDDED_FILE)
            if found:
                raise refusal_for(frozenset(found))
            for index in range(pages):
                width, height = document.get_page_size(index)
                if not all(0 < side <= limits.max_page_points for side in (width, height)):
                    raise TooComplex()
        finally:
            document.close()
