"""What a file is, from its first bytes, and whether it is also something else.

The declared type (the `Content-Type` the data source sent) is a claim; the bytes decide, by
their magic number. A PDF must start with its header at the very first byte (readers tolerate
junk before it, which is how polyglots are made, so the broker does not), end with its `%%EOF`
marker (a file cut short does not), and must not also be a ZIP archive (a central directory at
its end: the classic PDF/ZIP polyglot, which archive tools open as something else entirely).
"""

from __future__ import annotations

import io
import re
import zipfile

# "%PDF-1.7" or "%PDF-2.0": the header's version, right after the magic.
_PDF_HEADER = re.compile(rb"%PDF-[12]\.[0-9]")
EOF_WINDOW = 1024  # the marker must be within the last KiB, as readers look for it


def has_pdf_header(content: bytes) -> bool:
    return _PDF_HEADER.match(content) is not None


def has_eof_marker(content: bytes) -> bool:
    return b"%%EOF" in content[-EOF_WINDOW:]


def is_also_zip(content: bytes) -> bool:
    """True if a ZIP reader would open the file (its end of central directory is there)."""
    return zipfile.is_zipfile(io.BytesIO(content))
