"""The typed errors of identity verification.

Messages are fixed text and a few fixed codes (which input, which limit): never a value read
from a document, never a pixel, a landmark or an embedding. The web layer can show them.
"""

from __future__ import annotations

from enum import StrEnum

from sharelock.errors import SharelockError


class IdentityError(SharelockError):
    """Base of the identity-verification errors."""


class RejectionReason(StrEnum):
    TOO_LARGE = "too_large"  # more bytes than the limit
    TOO_MANY_PIXELS = "too_many_pixels"  # declared dimensions over the pixel cap
    UNSUPPORTED_FORMAT = "unsupported_format"  # neither JPEG nor PNG
    UNDECODABLE = "undecodable"  # truncated, corrupt, or a decoder limit hit


class ImageRejected(IdentityError):
    """An image was refused before or while decoding; nothing of it is kept."""

    def __init__(self, source: str, reason: RejectionReason) -> None:
        self.source = source  # "document" or "frame 3": which input, never its content
        self.reason = reason
        super().__init__(f"{source}: image rejected ({reason.value})")


class MrzNotFound(IdentityError):
    """No machine-readable zone could be found or read on the document image."""

    def __init__(self) -> None:
        super().__init__("no machine-readable zone could be read on the document")


class FaceNotFound(IdentityError):
    """The document image holds no face, or more than one."""

    def __init__(self, source: str, count: int) -> None:
        self.source = source
        self.count = count
        super().__init__(f"{source}: expected one face, found {count}")


class EngineUnavailable(IdentityError):
    """A component of the engine is missing on this machine (Tesseract, the face models)."""
