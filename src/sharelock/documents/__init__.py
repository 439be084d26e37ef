"""Documents from data sources: check a downloaded file, and draw its pages for review.

Pure: no network, no store, no web; CPU-bound work that async callers run on the documents
thread (`in_documents_thread`), since PDFium, which draws the pages, is not thread-safe.

- `check_pdf(content, declared_type, limits)` → `CheckedDocument`, or a `DocumentRefused`
  subclass per reason (`Reason`): size, pages, type against magic bytes, strict parsing
  (pypdf), bounded decompression, and refusal of JavaScript, embedded files, forms, launch and
  URI actions, external links and multimedia; PDFium must read it the same way.
- `CheckedDocument.fields(filename)` → the scope's record (`sharelock.scopes.DOCUMENT_FIELDS`);
  `document_bytes(fields)` back.
- `render_page(content, page, limits)` → PNG bytes, within pixel caps and a time budget.
- `DocumentLimits` / `DEFAULT_LIMITS`: every cap, in one place.
"""

from __future__ import annotations

from sharelock.documents.check import check_pdf, media_type_of
from sharelock.documents.errors import (
    ContainsActiveContent,
    ContainsEmbeddedFile,
    ContainsExternalLink,
    ContainsForm,
    ContainsJavaScript,
    ContainsLaunchAction,
    DecompressionLimit,
    DocumentRefused,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    ImageTooLarge,
    MalformedDocument,
    PolyglotDocument,
    Reason,
    RenderFailed,
    TooComplex,
    TooManyPages,
    TruncatedDocument,
    TypeMismatch,
    UnsupportedType,
)
from sharelock.documents.files import CheckedDocument, document_bytes, safe_filename
from sharelock.documents.limits import DEFAULT_LIMITS, PDF, DocumentLimits
from sharelock.documents.render import PNG, fit_scale, render_page
from sharelock.documents.worker import in_documents_thread

__all__ = [
    "DEFAULT_LIMITS",
    "PDF",
    "PNG",
    "CheckedDocument",
    "ContainsActiveContent",
    "ContainsEmbeddedFile",
    "ContainsExternalLink",
    "ContainsForm",
    "ContainsJavaScript",
    "ContainsLaunchAction",
    "DecompressionLimit",
    "DocumentLimits",
    "DocumentRefused",
    "DocumentTooLarge",
    "EmptyDocument",
    "EncryptedDocument",
    "ImageTooLarge",
    "MalformedDocument",
    "PolyglotDocument",
    "Reason",
    "RenderFailed",
    "TooComplex",
    "TooManyPages",
    "TruncatedDocument",
    "TypeMismatch",
    "UnsupportedType",
    "check_pdf",
    "document_bytes",
    "fit_scale",
    "in_documents_thread",
    "media_type_of",
    "render_page",
    "safe_filename",
]
