"""Every object of a PDF, looked at with pypdf: what it could do, and how large it really is.

The walk visits each indirect object the cross-reference table lists (reachable from the
catalogue or not: another reader may reach what this one does not), and every dictionary and
array nested in it, and notes the active content it finds:

- JavaScript anywhere (`/JS`, `/JavaScript`, a JavaScript action);
- actions other than going to a page of the document itself (`/GoTo`, `/Named`): launching a
  program, opening a URI or another file (`/URI`, `/GoToR`, `/GoToE`, `/Thread`), submitting
  or importing form data, multimedia and the rest;
- embedded files (`/EmbeddedFiles`, `/EF`, `/EmbeddedFile` streams, file-attachment notes);
- forms (`/AcroForm`, `/XFA`, widget annotations);
- multimedia and 3D annotations.

The broker refuses such files rather than flattening them: a flattened copy is a file the
source never issued (its digest would not be the source's), and refusing is the smaller code.

Sizes: every stream is decompressed under caps (pypdf's own, set by `check.py`, stop a stream
that expands too far, the zip-bomb case), their total is capped, each page's content too, and
every image's declared pixel count. Images are not decoded (their pixels are PDFium's business
when drawing), only their compressed data is inflated, counted and dropped.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import Any

from pypdf import PdfReader
from pypdf.errors import LimitReachedError
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    StreamObject,
)

from sharelock.documents.errors import (
    DecompressionLimit,
    ImageTooLarge,
    MalformedDocument,
    Reason,
    TooComplex,
)
from sharelock.documents.limits import DocumentLimits

# Keys whose mere presence is the finding.
_KEYS = {
    "/JS": Reason.JAVASCRIPT,
    "/JavaScript": Reason.JAVASCRIPT,
    "/EmbeddedFiles": Reason.EMBEDDED_FILE,
    "/EF": Reason.EMBEDDED_FILE,
    "/AcroForm": Reason.FORM,
    "/XFA": Reason.FORM,
    "/RichMediaContent": Reason.ACTIVE_CONTENT,
}
# Action types (`/S`) and what they are; `_HARMLESS` ones stay inside the document.
_HARMLESS = frozenset({"/GoTo", "/Named"})
_ACTIONS = {
    "/JavaScript": Reason.JAVASCRIPT,
    "/Launch": Reason.LAUNCH_ACTION,
    "/URI": Reason.EXTERNAL_LINK,
    "/GoToR": Reason.EXTERNAL_LINK,
    "/GoToE": Reason.EXTERNAL_LINK,
    "/Thread": Reason.EXTERNAL_LINK,
    "/SubmitForm": Reason.FORM,
    "/ResetForm": Reason.FORM,
    "/ImportData": Reason.FORM,
}
# Keys whose value is an action (for `/OpenAction`, possibly a destination instead).
_ACTION_KEYS = ("/A", "/OpenAction", "/PA", "/Next")
_SUBTYPES = {
    "/Widget": Reason.FORM,
    "/FileAttachment": Reason.EMBEDDED_FILE,
    "/RichMedia": Reason.ACTIVE_CONTENT,
    "/Screen": Reason.ACTIVE_CONTENT,
    "/Movie": Reason.ACTIVE_CONTENT,
    "/Sound": Reason.ACTIVE_CONTENT,
    "/3D": Reason.ACTIVE_CONTENT,
}
# Names that say the same in the raw bytes, for objects no cross-reference lists (which a
# repairing reader such as PDFium may still find). A name ends at a delimiter or white space.
_RAW_NAMES = re.compile(
    rb"/(JavaScript|JS|Launch|EmbeddedFiles?|AcroForm|XFA|RichMedia|SubmitForm|GoToR|URI)"
    rb"(?=[\s/<>\[\]()%{}]|$)"
)
_RAW_REASONS = {
    b"JavaScript": Reason.JAVASCRIPT,
    b"JS": Reason.JAVASCRIPT,
    b"Launch": Reason.LAUNCH_ACTION,
    b"EmbeddedFiles": Reason.EMBEDDED_FILE,
    b"EmbeddedFile": Reason.EMBEDDED_FILE,
    b"AcroForm": Reason.FORM,
    b"XFA": Reason.FORM,
    b"SubmitForm": Reason.FORM,
    b"RichMedia": Reason.ACTIVE_CONTENT,
    b"GoToR": Reason.EXTERNAL_LINK,
    b"URI": Reason.EXTERNAL_LINK,
}
# Image filters whose data needs no inflating to be counted: PDFium decodes them itself.
_CODED_IMAGES = frozenset({"/DCTDecode", "/JPXDecode", "/CCITTFaxDecode", "/JBIG2Decode"})
_INFLATE_CHUNK = 1024 * 1024


def raw_findings(data: bytes) -> set[Reason]:
    """Active-content names written in clear in `data` (a file, or a decoded object stream)."""
    return {_RAW_REASONS[match.group(1)] for match in _RAW_NAMES.finditer(data)}


def _name(dictionary: DictionaryObject, key: str) -> str | None:
    value = dictionary.get(key)
    return str(value) if isinstance(value, NameObject) else None


def _resolved(value: Any) -> Any:
    return value.get_object() if isinstance(value, IndirectObject) else value


def _references(reader: PdfReader) -> Iterator[tuple[int, int]]:
    for generation, table in reader.xref.items():
        for number in table:
            yield number, generation
    for number in reader.xref_objStm:
        yield number, 0


def inflated_size(raw: bytes, cap: int) -> int:
    """How many bytes a zlib stream inflates to, counted by chunks and never kept; raises
    `DecompressionLimit` past `cap`, `MalformedDocument` if it is not zlib."""
    inflater = zlib.decompressobj()
    total, pending = 0, raw
    try:
        while True:
            chunk = inflater.decompress(pending, _INFLATE_CHUNK)
            total += len(chunk)
            if total > cap:
                raise DecompressionLimit()
            pending = inflater.unconsumed_tail
            if inflater.eof or (not pending and not chunk):
                return total
    except zlib.error:
        raise MalformedDocument() from None


class Inspection:
    """One walk over one parsed file; `run()` fills `findings` or raises a limit's error."""

    def __init__(self, reader: PdfReader, limits: DocumentLimits) -> None:
        self.reader = reader
        self.limits = limits
        self.findings: set[Reason] = set()
        self.decoded_total = 0
        self._stream_sizes: dict[tuple[int, int], int] = {}

    def run(self) -> set[Reason]:
        references = list(_references(self.reader))
        if len(references) > self.limits.max_objects:
            raise TooComplex()
        self._visit(self.reader.trailer)
        for number, generation in references:
            value = self.reader.get_object(IndirectObject(number, generation, self.reader))
            self._visit(value)
            if isinstance(value, StreamObject) and not self.findings:
                # Once something is found the file is refused: no need to inflate the rest.
                self._measure(value, (number, generation))
        self._check_pages()
        return self.findings

    # -- structure ---------------------------------------------------------------------------

    def _visit(self, root: Any) -> None:
        """`root` and everything nested in it, without following indirect references (each
        indirect object gets its own visit), so cycles cost nothing."""
        stack: list[tuple[Any, int]] = [(root, 0)]
        while stack:
            value, depth = stack.pop()
            if depth > self.limits.max_nesting:
                raise TooComplex()
            if isinstance(value, DictionaryObject):
                self._dictionary(value)
                children: Any = dict.values(value)  # as stored: references stay references
            elif isinstance(value, ArrayObject):
                children = list.__iter__(value)
            else:
                continue
            for child in children:
                if isinstance(child, DictionaryObject | ArrayObject):
                    stack.append((child, depth + 1))

    def _dictionary(self, dictionary: DictionaryObject) -> None:
        for key in dictionary:
            reason = _KEYS.get(str(key))
            if reason is not None:
                self.findings.add(reason)
        kind, subtype = _name(dictionary, "/Type"), _name(dictionary, "/Subtype")
        if kind == "/EmbeddedFile":
            self.findings.add(Reason.EMBEDDED_FILE)
        if kind == "/Action":
            self._action(dictionary)
        if subtype in _SUBTYPES and (kind in (None, "/Annot") or "/Rect" in dictionary):
            self.findings.add(_SUBTYPES[subtype])
        for key in _ACTION_KEYS:
            if key in dictionary:
                self._action_value(_resolved(dict.__getitem__(dictionary, key)), key)
        if "/AA" in dictionary:
            triggers = _resolved(dict.__getitem__(dictionary, "/AA"))
            if isinstance(triggers, DictionaryObject):
                for value in dict.values(triggers):
                    self._action_value(_resolved(value), "/AA")

    def _action_value(self, value: Any, key: str) -> None:
        if isinstance(value, DictionaryObject):
            self._action(value)
        elif isinstance(value, ArrayObject) and key == "/Next":
            for item in list.__iter__(value):
                item = _resolved(item)
                if isinstance(item, DictionaryObject):
                    self._action(item)
        # An `/OpenAction` array is a destination in this document: harmless.

    def _action(self, action: DictionaryObject) -> None:
        kind = _name(action, "/S")
        if kind is None:
            if _name(action, "/Type") == "/Action":
                self.findings.add(Reason.ACTIVE_CONTENT)  # an action of no known kind
            return  # a structure attribute's `/A`, say: not an action
        if kind not in _HARMLESS:
            self.findings.add(_ACTIONS.get(kind, Reason.ACTIVE_CONTENT))

    # -- sizes -------------------------------------------------------------------------------

    def _measure(self, stream: StreamObject, reference: tuple[int, int]) -> None:
        if _name(stream, "/Subtype") == "/Image":
            size = self._image(stream)
        else:
            try:
                data = stream.get_data()
            except LimitReachedError:
                raise DecompressionLimit() from None
            size = len(data)
            if _name(stream, "/Type") == "/ObjStm":
                self.findings |= raw_findings(data)
        if size > self.limits.max_stream_bytes:
            raise DecompressionLimit()
        self._stream_sizes[reference] = size
        self.decoded_total += size
        if self.decoded_total > self.limits.max_decoded_bytes:
            raise DecompressionLimit()

    def _image(self, image: StreamObject) -> int:
        width, height = image.get("/Width"), image.get("/Height")
        if not (isinstance(width, NumberObject) and isinstance(height, NumberObject)):
            raise MalformedDocument()
        if width <= 0 or height <= 0:
            raise MalformedDocument()
        if int(width) * int(height) > self.limits.max_image_pixels:
            raise ImageTooLarge()
        filters = _resolved(image.get("/Filter"))
        if isinstance(filters, ArrayObject):
            chain = [str(_resolved(f)) for f in filters]
        else:
            chain = [] if filters is None else [str(filters)]
        if chain and chain[0] == "/FlateDecode":
            return inflated_size(image._data, self.limits.max_stream_bytes)
        if len(chain) == 1 and chain[0] in _CODED_IMAGES:
            return len(image._data)
        try:
            return len(image.get_data())
        except LimitReachedError:
            raise DecompressionLimit() from None

    def _check_pages(self) -> None:
        for page in self.reader.pages:
            box = page.mediabox
            if max(abs(float(box.width)), abs(float(box.height))) > self.limits.max_page_points:
                raise TooComplex()
            contents = dict.get(page, "/Contents")
            refs = list.__iter__(contents) if isinstance(contents, ArrayObject) else [contents]
            size = sum(
                self._stream_sizes.get((ref.idnum, ref.generation), 0)
                for ref in refs
                if isinstance(ref, IndirectObject)
            )
            if size > self.limits.max_page_content_bytes:
                raise TooComplex()
