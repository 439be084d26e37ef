"""The envelope's one error."""

from __future__ import annotations

from sharelock.errors import SharelockError


class EnvelopeRejected(SharelockError):
    """The credential envelope could not be opened.

    Raised for every reason (size, structure, header, algorithm, key id, padding, tag) with the
    same message, so that a caller learns nothing about which check failed."""

    def __init__(self) -> None:
        super().__init__("the credential envelope could not be opened")
