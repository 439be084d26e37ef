"""The document checks (`sharelock.documents`): each refusal reason, with files the tests make
(`tests/support/pdfs.py`); what a check accepts; the rendering caps and time budget; and that
no message or log ever carries the file's content."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import zipfile

import pytest
from pypdf import PdfWriter

from sharelock.connectors.validation import validate_collected
from sharelock.documents import (
    DEFAULT_LIMITS,
    PDF,
    ContainsActiveContent,
    ContainsEmbeddedFile,
    ContainsExternalLink,
    ContainsForm,
    ContainsJavaScript,
    ContainsLaunchAction,
    DecompressionLimit,
    DocumentLimits,
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
    check_pdf,
    document_bytes,
    fit_scale,
    in_documents_thread,
    render_page,
    safe_filename,
)
from tests.support.pdfs import (
    PLANTED,
    assemble,
    deflated,
    fpdf_document,
    one_page,
    png_bytes,
    stream,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MiB = 1024 * 1024


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_MAGIC)
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def refused(content: bytes, limits: DocumentLimits = DEFAULT_LIMITS) -> DocumentRefused:
    with pytest.raises(DocumentRefused) as caught:
        check_pdf(content, PDF, limits)
    return caught.value


# -- what passes -------------------------------------------------------------------------


def test_a_plain_document_passes_and_becomes_its_scope_fields() -> None:
    content = fpdf_document(pages=2, link_to_last=True)  # an internal link is fine
    checked = check_pdf(content, "application/pdf; charset=binary")
    assert checked.pages == 2
    fields = checked.fields("Relevé de compte (sept.).PDF")
    assert fields["media_type"] == "application/pdf"
    assert fields["filename"] == "Releve-de-compte-sept.pdf"
    assert fields["pages"] == "2"
    assert len(fields["sha256"]) == 64
    assert document_bytes(fields) == content
    # The connector's validation takes the record as it is.
    assert validate_collected({"proof_of_address": fields}) == {"proof_of_address": fields}
    assert PLANTED not in repr(checked)


def test_structure_attributes_are_not_mistaken_for_actions() -> None:
    """A tagged PDF's structure elements carry an `/A` (attributes) without `/S` of an
    action: not active content."""
    tagged = one_page(
        b" /StructTreeRoot 6 0 R /MarkInfo << /Marked true >>",
        b"",
        b"<< /Type /StructTreeRoot /K 7 0 R >>",
        b"<< /Type /StructElem /S /P /P 6 0 R /A << /O /Layout /Placement /Block >> >>",
    )
    assert check_pdf(tagged, PDF).pages == 1


# -- each reason -------------------------------------------------------------------------

FORM_AND_LINK = one_page(
    b" /AcroForm << /Fields [6 0 R] >>",
    b" /Annots [6 0 R 7 0 R]",
    b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (name) /Rect [72 700 300 720] >>",
    b"<< /Type /Annot /Subtype /Link /Rect [72 650 300 670]"
    b" /A << /S /URI /URI (https://attacker.example/) >> >>",
)

CASES: list[tuple[str, bytes, type[DocumentRefused]]] = [
    ("png declared as pdf", png_bytes(), TypeMismatch),
    ("junk before the header", b"junk\n" + fpdf_document(), TypeMismatch),
    ("zip after the pdf", b"", PolyglotDocument),  # made below: needs a zip
    ("cut short", fpdf_document()[:600], TruncatedDocument),
    ("cut short, marker added", fpdf_document()[:600] + b"\n%%EOF\n", MalformedDocument),
    ("not a pdf inside", b"%PDF-1.7\n" + b"x" * 200 + b"\n%%EOF\n", MalformedDocument),
    ("javascript on open", one_page(
        b" /OpenAction 6 0 R", b"", b"<< /S /JavaScript /JS (app.alert\\(1\\)) >>"
    ), ContainsJavaScript),
    # Names written with # escapes: not in the raw bytes, found by the object walk.
    ("escaped javascript", one_page(
        b" /OpenAction << /S /J#61vaScript /J#53 (x) >>"
    ), ContainsJavaScript),
    ("javascript outside the xref", one_page(
        between=b"9 0 obj\n<< /S /JavaScript /JS (x) >>\nendobj\n"
    ), ContainsJavaScript),
    ("launch", one_page(
        b" /OpenAction << /S /Launch /F (calc.exe) >>"
    ), ContainsLaunchAction),
    ("embedded file", one_page(
        b" /Names << /EmbeddedFiles << /Names [(a.txt) 6 0 R] >> >>",
        b"",
        b"<< /Type /Filespec /F (a.txt) /EF << /F 7 0 R >> >>",
        stream(b"hello", b" /Type /EmbeddedFile"),
    ), ContainsEmbeddedFile),
    ("file attachment note", one_page(
        b"", b" /Annots [6 0 R]",
        b"<< /Type /Annot /Subtype /FileAttachment /Rect [0 0 10 10] /FS 7 0 R >>",
        b"<< /Type /Filespec /F (a.txt) >>",
    ), ContainsEmbeddedFile),
    ("form and link", FORM_AND_LINK, ContainsForm),
    ("xfa", one_page(b" /AcroForm << /Fields [] /XFA 6 0 R >>", b"", stream(b"<xdp/>")),
     ContainsForm),
    ("uri link", one_page(
        b"", b" /Annots [6 0 R]",
        b"<< /Type /Annot /Subtype /Link /Rect [0 0 9 9]"
        b" /A << /S /URI /URI (https://x.example/) >> >>",
    ), ContainsExternalLink),
    ("other file", one_page(
        b" /OpenAction << /S /GoToR /F (other.pdf) /D [0 /Fit] >>"
    ), ContainsExternalLink),
    ("page action", one_page(
        b"", b" /AA << /O << /S /Hide /T (x) >> >>"
    ), ContainsActiveContent),
    ("rich media", one_page(
        b"", b" /Annots [6 0 R]", b"<< /Type /Annot /Subtype /RichMedia /Rect [0 0 9 9] >>"
    ), ContainsActiveContent),
    ("huge image", one_page(
        b"", b"", stream(
            b"\xff\xd8\xff\xe0",
            b" /Type /XObject /Subtype /Image /Width 10000 /Height 10000"
            b" /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode",
        ),
    ), ImageTooLarge),
    ("page of 20,000 points", one_page(media_box=b"[0 0 20000 842]"), TooComplex),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "error"), CASES, ids=[c[0] for c in CASES])
def test_each_reason_has_its_error(name: str, content: bytes, error: type[DocumentRefused]) -> None:
    if error is PolyglotDocument:
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("payload.txt", "hello")
        content = fpdf_document() + archive.getvalue()
    caught = refused(content)
    assert type(caught) is error
    assert caught.reason in caught.reasons


def test_several_findings_are_all_named_the_most_serious_first() -> None:
    caught = refused(FORM_AND_LINK)
    assert isinstance(caught, ContainsForm)
    assert caught.reasons == {Reason.FORM, Reason.EXTERNAL_LINK}


def test_declared_type_empty_and_size() -> None:
    content = fpdf_document()
    with pytest.raises(UnsupportedType):
        check_pdf(content, "image/png")
    with pytest.raises(UnsupportedType):
        check_pdf(content, None)
    with pytest.raises(EmptyDocument):
        check_pdf(b"", PDF)
    with pytest.raises(DocumentTooLarge):
        check_pdf(content, PDF, DocumentLimits(max_bytes=len(content) - 1))
    assert check_pdf(content, PDF, DocumentLimits(max_bytes=len(content))).pages == 1


def test_encrypted() -> None:
    writer = PdfWriter(clone_from=io.BytesIO(fpdf_document()))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    assert type(refused(out.getvalue())) is EncryptedDocument


def test_page_count() -> None:
    assert type(refused(fpdf_document(pages=3), DocumentLimits(max_pages=2))) is TooManyPages
    assert check_pdf(fpdf_document(pages=2), PDF, DocumentLimits(max_pages=2)).pages == 2


def test_a_stream_that_expands_past_its_cap_is_a_bomb() -> None:
    """4 MiB of spaces in 4 KiB of Flate, against a 1 MiB cap: pypdf stops at the cap."""
    bomb = assemble(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
            stream(deflated(4 * MiB), b" /Filter /FlateDecode"),
        ]
    )
    assert len(bomb) < 16 * 1024
    limits = DocumentLimits(max_stream_bytes=MiB)
    assert type(refused(bomb, limits)) is DecompressionLimit
    # Under a larger cap it is fine as a stream, but not as one page's content.
    roomy = DocumentLimits(max_stream_bytes=8 * MiB, max_page_content_bytes=2 * MiB)
    assert type(refused(bomb, roomy)) is TooComplex


def test_an_image_is_inflated_only_to_be_counted_and_capped() -> None:
    image = stream(
        deflated(4 * MiB, b"\x00"),
        b" /Type /XObject /Subtype /Image /Width 2048 /Height 2048"
        b" /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode",
    )
    content = one_page(
        b"", b"", image, resources=b" /XObject << /Im0 6 0 R >>", content=b" /Im0 Do"
    )
    assert type(refused(content, DocumentLimits(max_stream_bytes=MiB))) is DecompressionLimit
    assert check_pdf(content, PDF).pages == 1


def test_object_count_and_nesting_are_bounded() -> None:
    assert type(refused(fpdf_document(), DocumentLimits(max_objects=3))) is TooComplex
    deep = b"[" * 100 + b"]" * 100
    nested = one_page(b" /Deep " + deep)
    assert type(refused(nested)) is TooComplex
    assert check_pdf(nested, PDF, DocumentLimits(max_nesting=128)).pages == 1


def test_messages_and_logs_never_carry_the_content(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    texts = []
    for _name, content, _error in CASES:
        if content:
            texts.append(f"{refused(content)} {refused(content)!r}")
    broken = one_page(b" /Broken (" + PLANTED.encode() + b")")[:-30] + b"\n%%EOF\n"
    texts.append(str(refused(broken)))
    joined = "\n".join(texts) + "\n".join(r.getMessage() for r in caplog.records)
    assert PLANTED not in joined
    assert "attacker.example" not in joined and "calc.exe" not in joined


def test_safe_filenames() -> None:
    assert safe_filename("../../etc/passwd") == "passwd.pdf"
    assert safe_filename("C:\\Users\\x\\Facture été.pdf") == "Facture-ete.pdf"
    assert safe_filename("") == "document.pdf"
    assert safe_filename("...", "bill.pdf") == "bill.pdf"
    assert len(safe_filename("a" * 300)) == 80


# -- rendering ---------------------------------------------------------------------------


def test_a_page_renders_to_a_png_within_the_caps() -> None:
    content = fpdf_document(pages=2)
    png = render_page(content, 2)
    width, height = png_size(png)
    # A4 (595 x 842 points) at 110 dpi.
    assert (width, height) == (909, 1286)
    small = DocumentLimits(render_dpi=300, max_render_pixels=100_000, max_render_side=5000)
    width, height = png_size(render_page(content, 1, small))
    assert width * height <= 100_000 and width > 200
    with pytest.raises(ValueError, match="no such page"):
        render_page(content, 3)
    with pytest.raises(ValueError, match="no such page"):
        render_page(content, 0)


def test_a_poster_sized_page_is_drawn_small() -> None:
    poster = one_page(media_box=b"[0 0 14000 9000]")
    check_pdf(poster, PDF)
    width, height = png_size(render_page(poster, 1))
    assert max(width, height) <= DEFAULT_LIMITS.max_render_side
    assert width * height <= DEFAULT_LIMITS.max_render_pixels
    assert fit_scale(595, 842, DEFAULT_LIMITS) == pytest.approx(110 / 72)


def test_drawing_stops_at_its_time_budget() -> None:
    lines = b"".join(b"10 %d m 580 %d l S\n" % (i, i) for i in range(20, 820, 2))
    busy = one_page(content=lines)
    calls: list[float] = []

    def clock() -> float:  # the deadline is set at 0; every later look is long after it
        calls.append(1.0)
        return 0.0 if len(calls) == 1 else 1e9

    with pytest.raises(RenderFailed, match="in time"):
        render_page(busy, 1, clock=clock)
    assert png_size(render_page(busy, 1)) == (909, 1286)  # with time, the same page draws


async def test_documents_work_runs_on_its_one_thread() -> None:
    content = fpdf_document()
    names = await asyncio.gather(
        *(in_documents_thread(lambda: threading.current_thread().name) for _ in range(4))
    )
    assert set(names) == {names[0]} and names[0].startswith("sharelock-documents")
    pages = await asyncio.gather(*(in_documents_thread(render_page, content, 1) for _ in range(4)))
    assert len(set(pages)) == 1 and pages[0].startswith(PNG_MAGIC)
