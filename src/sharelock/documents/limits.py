"""How much of a document the broker accepts and how large a page it draws: one place.

The defaults are the broker's (no setting yet: `Settings` would hold them as
`document_limits` if operators need to change them). They are sized for what a data source
issues to a person (a bill, a notice, account details, a statement of a few pages) and to keep
a signed delivery reasonable: a 2 MiB file becomes about 3.6 MB of JWS (base64 inside base64).
"""

from __future__ import annotations

from dataclasses import dataclass

PDF = "application/pdf"
"""The one media type a document may have."""

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DocumentLimits:
    """Every cap the checks and the rendering apply (see `check_pdf`, `render_page`)."""

    max_bytes: int = 2 * MiB  # the file as downloaded
    max_pages: int = 12
    max_objects: int = 20_000  # indirect objects in the file
    max_nesting: int = 64  # depth of arrays and dictionaries inside one object
    max_stream_bytes: int = 16 * MiB  # one stream, decompressed (pypdf stops there)
    max_decoded_bytes: int = 48 * MiB  # every stream, decompressed, added up
    max_page_content_bytes: int = 4 * MiB  # one page's content streams, decompressed
    max_image_pixels: int = 36_000_000  # one image of the file, as declared
    max_page_points: float = 14_400.0  # a page side (200 inches, PDF's own limit)
    # Rendering for review: a page drawn at `render_dpi` unless that would pass the caps.
    render_dpi: float = 110.0
    max_render_pixels: int = 4_000_000
    max_render_side: int = 2_400
    render_seconds: float = 10.0  # pdfium stops drawing a page after this long

    def __post_init__(self) -> None:
        numbers = (
            self.max_bytes, self.max_pages, self.max_objects, self.max_nesting,
            self.max_stream_bytes, self.max_decoded_bytes, self.max_page_content_bytes,
            self.max_image_pixels, self.max_page_points, self.render_dpi,
            self.max_render_pixels, self.max_render_side, self.render_seconds,
        )  # fmt: skip
        if any(value <= 0 for value in numbers):
            raise ValueError("document limits must be positive")


DEFAULT_LIMITS = DocumentLimits()
