"""Face comparison on real photographs: every same-person and different-person pair we have,
the true-match and false-match rates at the policy's threshold (and at dlib's 0.6), written to
tests/artifacts/identity-face-rates.json."""

from __future__ import annotations

import io
import itertools
import json
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

from sharelock.identity import DlibFaceEngine, Face, VerificationPolicy
from tests.identity.conftest import Photo, mirrored
from tests.identity.test_documents import ALICE
from tests.support.specimens import jpeg, passport_zone, render

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
THRESHOLD = VerificationPolicy().face_match_threshold
# Distinct photographs of one person (the "partial face" files are crops of obama.jpg, so they
# would flatter the rate: left out).
SAME_PERSON = {"obama": ("obama", "obama2", "obama3")}
SINGLES = ("obama", "obama2", "obama3", "biden", "astronaut")
GROUPS = tuple(f"sample{number}" for number in range(1, 7))
MIN_GROUP_FACE = 80  # pixels: sample1's badge is found as a 65-pixel "face"


def _faces(engine: DlibFaceEngine, photos: dict[str, Photo]) -> dict[str, Face]:
    found: dict[str, Face] = {}
    for name in SINGLES:
        faces = engine.faces(photos[name])
        assert len(faces) == 1, name
        found[name] = faces[0]
    for group in GROUPS:
        for index, face in enumerate(engine.faces(photos[group])):
            if face.box[2] - face.box[0] >= MIN_GROUP_FACE:
                found[f"{group}#{index}"] = face
    return found


def _person(name: str) -> str:
    return "obama" if name.startswith("obama") else name


def test_match_rates_on_real_photographs(
    face_engine: DlibFaceEngine, photos: dict[str, Photo]
) -> None:
    faces = _faces(face_engine, photos)
    genuine, impostor = [], []
    for a, b in itertools.combinations(sorted(faces), 2):
        group_a, group_b = a.split("#")[0], b.split("#")[0]
        if "#" in a and "#" in b and group_a != group_b:
            continue  # two group photographs: whether it is one person is not known
        distance = faces[a].distance(faces[b])
        (genuine if _person(a) == _person(b) else impostor).append((a, b, distance))
    assert len(genuine) == 3 and len(impostor) > 100

    def rates(threshold: float) -> dict[str, float]:
        return {
            "true_match_rate": sum(d <= threshold for *_, d in genuine) / len(genuine),
            "false_match_rate": sum(d <= threshold for *_, d in impostor) / len(impostor),
        }

    report = {
        "threshold": THRESHOLD,
        "at_threshold": rates(THRESHOLD),
        "at_dlib_0.6": rates(0.6),
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
        "largest_genuine_distance": max(d for *_, d in genuine),
        "smallest_impostor_distance": min(d for *_, d in impostor),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "identity-face-rates.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    assert report["at_threshold"] == {"true_match_rate": 1.0, "false_match_rate": 0.0}


def test_a_printed_portrait_matches_other_photographs_of_the_person(
    face_engine: DlibFaceEngine, portraits: dict[str, Photo], photos: dict[str, Photo]
) -> None:
    """The document path: a portrait printed on a page, photographed (JPEG), against the live
    photographs; and against other people."""
    zone = passport_zone(ALICE, "12AB34567", date(2032, 1, 1))
    for printed in ("obama", "obama2", "obama3"):
        page = Image.open(io.BytesIO(jpeg(render(zone, portraits[printed], "PASSPORT"), 85)))
        card_faces = face_engine.faces(np.asarray(page.convert("RGB")))
        assert card_faces, printed
        on_card = card_faces[0]
        for live in ("obama", "obama2", "obama3"):
            if live != printed:
                assert on_card.distance(face_engine.faces(photos[live])[0]) <= THRESHOLD
        for other in ("biden", "astronaut"):
            assert on_card.distance(face_engine.faces(photos[other])[0]) > THRESHOLD


def test_a_mirrored_photograph_still_matches(
    face_engine: DlibFaceEngine, photos: dict[str, Photo]
) -> None:
    face = face_engine.faces(photos["obama2"])[0]
    flipped = face_engine.faces(mirrored(photos["obama2"]))[0]
    assert face.distance(flipped) <= THRESHOLD
    assert face.yaw is not None and flipped.yaw is not None
    assert face.yaw > 15 and flipped.yaw < -15  # the turn is mirrored too


def test_a_face_shows_no_embedding(face_engine: DlibFaceEngine, photos: dict[str, Photo]) -> None:
    face = face_engine.faces(photos["obama"])[0]
    text = repr(face)
    assert text.startswith("Face(box=") and "embedding" not in text and "landmarks" not in text
    assert len(text) < 60
