"""Fixtures of the identity tests: the real engine (Tesseract, dlib's models: loaded once per
session), real photographs from packages (tests/support/face_photos.py) and a fixed day."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from skimage import data

from sharelock.clock import FrozenClock
from sharelock.identity import DlibFaceEngine, TesseractMrzReader
from tests.support import face_photos

TODAY = date(2026, 5, 1)
Photo = NDArray[np.uint8]


def frozen_today() -> FrozenClock:
    return FrozenClock(datetime(2026, 5, 1, 10, 0, tzinfo=UTC).timestamp())


def mirrored(image: Photo) -> Photo:
    return np.ascontiguousarray(image[:, ::-1])


@pytest.fixture(scope="session")
def face_engine() -> DlibFaceEngine:
    return DlibFaceEngine()


@pytest.fixture(scope="session")
def mrz_reader() -> TesseractMrzReader:
    return TesseractMrzReader()


@pytest.fixture(scope="session")
def photos() -> dict[str, Photo]:
    """Every photograph by name, at most 960 pixels a side (the live frames' working size).
    The astronaut is cropped to her portrait: the mission patch on her suit is detected as a
    face by dlib's HOG detector, and is no person."""
    directory = face_photos.ensure()
    loaded = {"astronaut": np.ascontiguousarray(data.astronaut()[0:260, 90:350])}
    for name in (*face_photos.PERSONS["obama"], *face_photos.PERSONS["biden"]):
        loaded[name.removesuffix(".jpg")] = _load(directory / name)
    for name in face_photos.GROUP_PHOTOS:
        loaded[name.removesuffix(".jpg")] = _load(directory / name)
    return loaded


def _load(path: object) -> Photo:
    with Image.open(str(path)) as opened:
        image = opened.convert("RGB")
    image.thumbnail((960, 960))
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def portrait(image: Photo, box: tuple[int, int, int, int]) -> Photo:
    """A passport-style crop around a face box: the head and shoulders, 7:9."""
    left, top, right, bottom = box
    width = right - left
    cx, cy = (left + right) // 2, (top + bottom) // 2
    half_w, half_h = int(width * 1.0), int(width * 1.3)
    x0, y0 = max(0, cx - half_w), max(0, cy - half_h)
    x1, y1 = min(image.shape[1], cx + half_w), min(image.shape[0], cy + half_h)
    return np.ascontiguousarray(image[y0:y1, x0:x1])


@pytest.fixture(scope="session")
def portraits(photos: dict[str, Photo], face_engine: DlibFaceEngine) -> dict[str, Photo]:
    """The portrait to print on a specimen document, for each single-person photograph."""
    result = {}
    for name in ("astronaut", "obama", "obama2", "obama3", "biden"):
        faces = face_engine.faces(photos[name])
        assert len(faces) == 1, name
        result[name] = portrait(photos[name], faces[0].box)
    return result
