"""Finding and reading the machine-readable zone of a document photo: OpenCV finds the band,
Tesseract (Debian's `tesseract-ocr`, through `pytesseract`) reads its characters.

The zone is printed in a monospaced font on lines of a known length (44, 36 or 30 characters),
so each line is cut into that many cells and every character Tesseract reports is put in the
cell under its box. This is what makes the reading reliable: Tesseract's English model reads
long runs of the filler '<' badly (it drops some, glues two into a 'K'), and a character's
position, not its rank in the output, says which field it belongs to. Whether a cell is a
filler is then decided from its ink: its normalised correlation with the line's own filler
glyph (`CHEVRON_LIKENESS`). The check digits cannot tell: 'K' weighs 20, as good as '<' (0)
modulo 10.

`TesseractMrzReader.read` yields candidate readings, best first (several text heights, both
line lengths for two-line zones, then a cell-by-cell vote, and the image upside down); the
parser and its check digits decide which is right, and the caller stops at the first.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import pytesseract
from numpy.typing import NDArray

from sharelock.identity.errors import EngineUnavailable
from sharelock.identity.images import RgbImage

Gray = NDArray[Any]  # 8-bit grey levels (OpenCV's stubs do not keep the dtype)

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
CHEVRON_LIKENESS = 0.75  # measured: fillers 0.90 and above, letters 0.56 and below
_TESSERACT_CONFIG = (
    f"--psm 7 -c tessedit_char_whitelist={ALPHABET} -c load_system_dawg=0 -c load_freq_dawg=0"
)
_BAND_HEIGHT = 600  # the band search works on the image scaled to this height
_LINE_HEIGHTS = (32, 40, 26)  # text heights (pixels) Tesseract is given, in turn
_PATCH_HEIGHT = 24
_SLACK = 0.35  # a cell's window is widened by this much of a cell on each side


class MrzReader(Protocol):
    def read(self, image: RgbImage) -> Iterator[tuple[str, ...]]:
        """Candidate readings of the zone's lines, best first; none when no band is found."""
        ...


@dataclass(frozen=True)
class _Line:
    gray: Gray
    ink: Gray  # binarised, text white
    left: int  # first and last inked columns: the line's cells lie between
    right: int


def _band_candidates(gray: Gray) -> Iterator[Gray]:
    """Upright crops of the wide, dense text blocks, largest first (the classic morphological
    search: black-hat, horizontal gradient, closing, Otsu; then the block's own angle)."""
    scale = _BAND_HEIGHT / gray.shape[0]
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (3, 3), 0)
    rect = cv2.getStructuringElement(cv2.MORPH_RECT, (13, 5))
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (21, 21))
    blackhat = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, rect)
    gradient = np.absolute(cv2.Sobel(blackhat, cv2.CV_32F, 1, 0, ksize=-1))
    span = float(gradient.max() - gradient.min()) or 1.0
    gradient_u8 = ((gradient - gradient.min()) * (255.0 / span)).astype(np.uint8)
    closed = cv2.morphologyEx(gradient_u8, cv2.MORPH_CLOSE, rect)
    mask = cv2.threshold(closed, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[1]
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, square)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=4)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:4]:
        (cx, cy), (width, height), angle = cv2.minAreaRect(contour)
        if width < height:
            width, height, angle = height, width, angle + 90
        while angle > 90:
            angle -= 180
        while angle <= -90:
            angle += 180
        if width < 4 * height or width < 0.5 * small.shape[1]:
            continue  # not a wide band of text
        centre = (cx / scale, cy / scale)
        turn = cv2.getRotationMatrix2D(centre, angle, 1.0)
        upright = cv2.warpAffine(
            gray,
            turn,
            (gray.shape[1], gray.shape[0]),
            flags=cv2.INTER_CUBIC,
            borderMode=cv2.BORDER_REPLICATE,
        )
        # Generous in height: the block found may miss a line of the zone (`_lines` sorts out).
        half_w, half_h = width / scale * 0.53, height / scale * 1.6
        x0, y0 = int(max(0, centre[0] - half_w)), int(max(0, centre[1] - half_h))
        x1, y1 = int(centre[0] + half_w), int(centre[1] + half_h)
        yield upright[y0:y1, x0:x1]


def _lines(band: Gray) -> list[_Line]:
    """The band's text lines, from the horizontal projection of its ink."""
    ink = cv2.threshold(band, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]
    profile = (ink > 0).sum(axis=1)
    inked = profile > max(2, int(profile.max() * 0.08))
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for row, on in enumerate([*inked.tolist(), False]):
        if on and start is None:
            start = row
        elif not on and start is not None:
            if start > 0 and row < band.shape[0]:  # a line cut by the crop is no line
                spans.append((start, row))
            start = None
    lines = []
    for top, bottom in spans:
        margin = max(2, (bottom - top) // 4)
        rows = slice(max(0, top - margin), bottom + margin)
        columns = np.flatnonzero((ink[top:bottom] > 0).sum(axis=0))
        if columns.size:
            lines.append(_Line(band[rows], ink[rows], int(columns[0]), int(columns[-1]) + 1))
    if not lines:
        return lines
    # The zone's lines are the widest and of one height: drop labels, pictures and edges.
    widest = max(line.right - line.left for line in lines)
    heights = sorted(line.gray.shape[0] for line in lines if line.right - line.left > 0.7 * widest)
    usual = heights[len(heights) // 2]
    return [
        line
        for line in lines
        if line.right - line.left > 0.7 * widest and 0.6 * usual < line.gray.shape[0] < 1.6 * usual
    ]


def _boxes(line: _Line, height: int) -> list[tuple[str, float, float]]:
    """Tesseract's characters on `line`, with their left and right edges in line pixels."""
    scale = height / line.gray.shape[0]
    scaled = cv2.resize(line.gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    pad = 16
    padded = cv2.copyMakeBorder(scaled, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    try:
        text = pytesseract.image_to_boxes(padded, lang="eng", config=_TESSERACT_CONFIG)
    except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError):
        raise EngineUnavailable("Tesseract failed or is not installed") from None
    boxes = []
    for row in str(text).splitlines():
        parts = row.split(" ")
        if len(parts) >= 5 and len(parts[0]) == 1:
            boxes.append((parts[0], (int(parts[1]) - pad) / scale, (int(parts[3]) - pad) / scale))
    return boxes


def _window(line: _Line, index: int, cells: int, slack: float) -> NDArray[np.float32]:
    """Cell `index` of `line` (widened by `slack` cells each side), scaled to the patch height."""
    width = (line.right - line.left) / cells
    x0 = max(0, int(line.left + (index - slack) * width))
    x1 = min(line.ink.shape[1], max(x0 + 1, int(line.left + (index + 1 + slack) * width)))
    scale = _PATCH_HEIGHT / line.ink.shape[0]
    size = (max(1, round((x1 - x0) * scale)), _PATCH_HEIGHT)
    patch = cv2.resize(line.ink[:, x0:x1], size, interpolation=cv2.INTER_AREA)
    return patch.astype(np.float32)


def _filler_likeness(line: _Line, chars: list[str]) -> list[float] | None:
    """Each cell's best normalised correlation with the line's own filler glyph: the median of
    the cells read as fillers, re-aligned twice on itself (the cell grid drifts by a fraction
    of a cell along a line, hence the sliding match)."""
    cells = len(chars)
    fillers = [i for i, char in enumerate(chars) if char == "<"]
    if len(fillers) < 3:
        return None
    cell_width = round((line.right - line.left) / cells * _PATCH_HEIGHT / line.ink.shape[0])
    cell_width = max(2, cell_width)
    size = (cell_width, _PATCH_HEIGHT)
    template = np.median([cv2.resize(_window(line, i, cells, 0.0), size) for i in fillers], axis=0)
    for _ in range(2):
        aligned = []
        for index in fillers:
            window = _window(line, index, cells, _SLACK)
            if window.shape[1] > cell_width:
                scores = cv2.matchTemplate(
                    window, template.astype(np.float32), cv2.TM_CCOEFF_NORMED
                )
                x = int(np.argmax(scores))
                aligned.append(window[:, x : x + cell_width])
        if len(aligned) < 3:
            return None
        template = np.median(aligned, axis=0)
    likeness = []
    for index in range(cells):
        window = _window(line, index, cells, _SLACK)
        if window.shape[1] <= cell_width:
            likeness.append(0.0)
            continue
        scores = cv2.matchTemplate(window, template.astype(np.float32), cv2.TM_CCOEFF_NORMED)
        likeness.append(float(scores.max()))
    return likeness


def _place(line: _Line, boxes: list[tuple[str, float, float]], cells: int) -> str:
    """The line's characters by cell: a filler when its ink is the fillers' own, else the
    letter Tesseract put there, else '?' (unread, which no check digit accepts)."""
    width = (line.right - line.left) / cells
    chars = [""] * cells
    for char, left, right in boxes:
        if char == "<" or right - left > 1.6 * width:
            continue  # a filler, or two fillers glued into one letter
        index = int(((left + right) / 2 - line.left) / width)
        if 0 <= index < cells:
            chars[index] = char
    guessed = [char or "<" for char in chars]
    likeness = _filler_likeness(line, guessed)
    if likeness is None:
        return "".join(guessed)
    return "".join(
        "<" if score >= CHEVRON_LIKENESS else (char or "?")
        for char, score in zip(chars, likeness, strict=True)
    )


def _cell_counts(lines: list[_Line]) -> tuple[int, ...]:
    # Two lines are a passport's 44 characters or a card's 36: both are tried, and the check
    # digits tell (the first letter, "P", is itself an OCR guess).
    return {3: (30,), 2: (44, 36)}.get(len(lines), ())


def _vote(readings: list[tuple[str, ...]]) -> tuple[str, ...]:
    """Cell by cell, the character most readings agree on ('?' when none was read)."""
    voted = []
    for line_readings in zip(*readings, strict=True):
        line = []
        for cell in zip(*line_readings, strict=True):
            known = [char for char in cell if char != "?"]
            line.append(Counter(known).most_common(1)[0][0] if known else "?")
        voted.append("".join(line))
    return tuple(voted)


class TesseractMrzReader:
    """`MrzReader` on OpenCV and the Tesseract command line."""

    def __init__(self) -> None:
        if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
            raise EngineUnavailable("the tesseract command is missing (Debian: tesseract-ocr)")

    def read(self, image: RgbImage) -> Iterator[tuple[str, ...]]:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        for upright in (gray, cv2.rotate(gray, cv2.ROTATE_180)):
            for band in _band_candidates(upright):
                lines = _lines(band)[-3:]  # the zone is the bottom of the band
                counts = _cell_counts(lines)
                readings: dict[int, list[tuple[str, ...]]] = {count: [] for count in counts}
                for height in _LINE_HEIGHTS if counts else ():
                    boxes = [_boxes(line, height) for line in lines]
                    for count in counts:
                        reading = tuple(
                            _place(line, found, count)
                            for line, found in zip(lines, boxes, strict=True)
                        )
                        readings[count].append(reading)
                        yield reading
                for found_readings in readings.values():
                    if len(found_readings) > 2:
                        yield _vote(found_readings)

    def __repr__(self) -> str:
        return "TesseractMrzReader()"
