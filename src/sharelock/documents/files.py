"""A checked document as the fields of its scope, and back (`sharelock.scopes.DOCUMENT_FIELDS`).

The file travels as standard base64 in `document`, so the scope stays `field -> str` like any
other: sealed, reviewed, released and erased by the same code. Its name is the data source's,
reduced to characters safe in any file system and header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from sharelock.documents.errors import MalformedDocument
from sharelock.documents.limits import PDF

MAX_FILENAME = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True, repr=False)
class CheckedDocument:
    """A file that passed `check_pdf`. Its repr says nothing of the content."""

    content: bytes
    pages: int
    media_type: str = PDF

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def fields(self, filename: str) -> dict[str, str]:
        """The scope's record: the file in base64, its type, name, pages and digest."""
        return {
            "document": base64.b64encode(self.content).decode("ascii"),
            "media_type": self.media_type,
            "filename": safe_filename(filename),
            "pages": str(self.pages),
            "sha256": self.sha256,
        }

    def __repr__(self) -> str:
        return f"CheckedDocument(pages={self.pages}, bytes={len(self.content)})"


def document_bytes(fields: Mapping[str, str]) -> bytes:
    """The file of a document scope's record (strict base64: anything else is refused)."""
    try:
        return base64.b64decode(fields["document"].encode("ascii"), validate=True)
    except (KeyError, UnicodeEncodeError, binascii.Error, ValueError):
        raise MalformedDocument() from None


def safe_filename(name: str | None, default: str = "document.pdf") -> str:
    """`name` without any directory, reduced to `[A-Za-z0-9._-]` (accents folded), at most
    80 characters, ending in `.pdf`; `default` if nothing is left."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    folded = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("-", folded).strip(".-_")
    stem = cleaned[:-4] if cleaned.lower().endswith(".pdf") else cleaned
    stem = stem[: MAX_FILENAME - 4].rstrip(".-_")
    return f"{stem}.pdf" if stem else default
