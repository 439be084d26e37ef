"""Why a document is refused: one typed error per reason, each with fixed text.

A message never quotes the file (nor its name, nor anything parsed from it): it names the
reason only, so it can go to a log, an audit row (`reason` is a short code) or the person.
"""

from __future__ import annotations

from enum import StrEnum

from sharelock.errors import SharelockError


class Reason(StrEnum):
    """The reasons, as the short codes the audit trail and the API carry."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    UNSUPPORTED_TYPE = "unsupported_type"  # declared something other than a PDF
    TYPE_MISMATCH = "type_mismatch"  # declared a PDF, the bytes are something else
    POLYGLOT = "polyglot"  # a PDF that is also another format (a ZIP)
    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    ENCRYPTED = "encrypted"
    TOO_MANY_PAGES = "too_many_pages"
    TOO_COMPLEX = "too_complex"  # too many objects, too deep, a page too large
    DECOMPRESSION_LIMIT = "decompression_limit"
    IMAGE_TOO_LARGE = "image_too_large"
    JAVASCRIPT = "javascript"
    LAUNCH_ACTION = "launch_action"
    EMBEDDED_FILE = "embedded_file"
    FORM = "form"
    EXTERNAL_LINK = "external_link"
    ACTIVE_CONTENT = "active_content"  # multimedia, 3D, other actions than going to a page


class DocumentRefused(SharelockError):
    """The file is not a document the broker passes on. `reason` says why; `reasons` lists
    every active-content finding when several were found (a form *and* a link)."""

    reason: Reason = Reason.MALFORMED
    text = "the document could not be read as a PDF"

    def __init__(self, reasons: frozenset[Reason] | None = None) -> None:
        super().__init__(self.text)
        self.reasons = reasons if reasons else frozenset({self.reason})


class EmptyDocument(DocumentRefused):
    reason = Reason.EMPTY
    text = "the document is empty"


class DocumentTooLarge(DocumentRefused):
    reason = Reason.TOO_LARGE
    text = "the document is larger than the broker accepts"


class UnsupportedType(DocumentRefused):
    reason = Reason.UNSUPPORTED_TYPE
    text = "the document is not declared as a PDF"


class TypeMismatch(DocumentRefused):
    reason = Reason.TYPE_MISMATCH
    text = "the document is declared a PDF but is not one"


class PolyglotDocument(DocumentRefused):
    reason = Reason.POLYGLOT
    text = "the document is a PDF and another format at once"


class TruncatedDocument(DocumentRefused):
    reason = Reason.TRUNCATED
    text = "the document is truncated"


class MalformedDocument(DocumentRefused):
    reason = Reason.MALFORMED
    text = "the document could not be read as a PDF"


class EncryptedDocument(DocumentRefused):
    reason = Reason.ENCRYPTED
    text = "the document is encrypted or password-protected"


class TooManyPages(DocumentRefused):
    reason = Reason.TOO_MANY_PAGES
    text = "the document has more pages than the broker accepts"


class TooComplex(DocumentRefused):
    reason = Reason.TOO_COMPLEX
    text = "the document's structure passes the broker's limits"


class DecompressionLimit(DocumentRefused):
    reason = Reason.DECOMPRESSION_LIMIT
    text = "a compressed part of the document expands beyond the broker's limit"


class ImageTooLarge(DocumentRefused):
    reason = Reason.IMAGE_TOO_LARGE
    text = "an image in the document is too large"


class ContainsJavaScript(DocumentRefused):
    reason = Reason.JAVASCRIPT
    text = "the document contains JavaScript"


class ContainsLaunchAction(DocumentRefused):
    reason = Reason.LAUNCH_ACTION
    text = "the document would start a program"


class ContainsEmbeddedFile(DocumentRefused):
    reason = Reason.EMBEDDED_FILE
    text = "the document carries an embedded file"


class ContainsForm(DocumentRefused):
    reason = Reason.FORM
    text = "the document contains a form"


class ContainsExternalLink(DocumentRefused):
    reason = Reason.EXTERNAL_LINK
    text = "the document links outside itself"


class ContainsActiveContent(DocumentRefused):
    reason = Reason.ACTIVE_CONTENT
    text = "the document contains active content (multimedia, 3D or actions)"


# Active content, most serious first: when a file has several, its error is the first.
ACTIVE_CONTENT_ORDER: tuple[type[DocumentRefused], ...] = (
    ContainsJavaScript,
    ContainsLaunchAction,
    ContainsEmbeddedFile,
    ContainsForm,
    ContainsExternalLink,
    ContainsActiveContent,
)


def refusal_for(reasons: frozenset[Reason]) -> DocumentRefused:
    """The error for a set of active-content findings: the most serious one's type, carrying
    them all."""
    for cls in ACTIVE_CONTENT_ORDER:
        if cls.reason in reasons:
            return cls(reasons)
    raise ValueError("no active-content reason given")


class RenderFailed(SharelockError):
    """A page of a checked document could not be drawn (in time, or at all). Fixed text."""

    def __init__(self, text: str = "the document page could not be drawn") -> None:
        super().__init__(text)
