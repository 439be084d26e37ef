"""A whole verification: specimen document, live frames, the source's identity, in; OpenID IA
evidence out. Also: what never comes out (images, embeddings, values read, logs)."""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest

from sharelock.identity import (
    CheckName,
    DlibFaceEngine,
    FramesRejected,
    HeldIdentity,
    IdentityVerifier,
    ImageRejected,
    TesseractMrzReader,
)
from tests.identity.conftest import Photo, frozen_today, mirrored
from tests.support.specimens import (
    Holder,
    card_2021_zone,
    jpeg,
    passport_zone,
    photographed,
    render,
)

HOLDER = Holder("MARTIN", "ALICE MARIE", date(1990, 2, 15))
HELD = HeldIdentity("Alice-Marie", "Martin", date(1990, 2, 15))


@pytest.fixture(scope="module")
def verifier(mrz_reader: TesseractMrzReader, face_engine: DlibFaceEngine) -> IdentityVerifier:
    return IdentityVerifier(mrz_reader, face_engine, clock=frozen_today())


def document(portrait: Photo, zone: list[str] | None = None) -> bytes:
    zone = zone or passport_zone(HOLDER, "12AB34567", date(2032, 1, 1))
    return jpeg(photographed(render(zone, portrait, "PASSPORT"), angle=2.0), 85)


def live(photos: dict[str, Photo]) -> list[bytes]:
    return [
        jpeg(frame) for frame in (photos["obama"], photos["obama2"], mirrored(photos["obama2"]))
    ]


def test_a_verification_that_passes(
    verifier: IdentityVerifier,
    portraits: dict[str, Photo],
    photos: dict[str, Photo],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    result = verifier.verify(document(portraits["obama3"]), live(photos), HELD)
    claims = result.evidence.to_claims()
    assert result.evidence.verified, claims
    assert claims["type"] == "document" and claims["time"] == "2026-05-01T10:00:00Z"
    assert claims["document_details"] == {"type": "passport", "issuer": {"country_code": "FRA"}}
    checks = {entry["check"]: entry for entry in claims["check_details"]}
    assert set(checks) == {check.value for check in CheckName}
    assert checks["name_match"]["result"] == "match"  # "Alice-Marie" normalised as in checks
    assert checks["face_match"]["check_method"] == "bvr"
    assert checks["face_match"]["score"] <= checks["face_match"]["threshold"] == 0.5
    text = json.dumps(claims)
    for value in ("MARTIN", "Martin", "ALICE", "12AB34567", "1990", "900215"):
        assert value not in text  # evidence, not the document's values
    assert "verified=True" in repr(result) and "MARTIN" not in repr(result)
    assert not [r for r in caplog.records if r.name.startswith("sharelock.identity")]


def test_another_person_in_front_of_the_camera(
    verifier: IdentityVerifier, portraits: dict[str, Photo], photos: dict[str, Photo]
) -> None:
    result = verifier.verify(document(portraits["biden"]), live(photos), HELD)
    assert not result.evidence.verified
    assert not result.evidence.outcome(CheckName.FACE_MATCH).passed
    assert result.evidence.outcome(CheckName.MRZ_CHECK_DIGITS).passed


def test_a_replayed_still_is_not_verified(
    verifier: IdentityVerifier, portraits: dict[str, Photo], photos: dict[str, Photo]
) -> None:
    result = verifier.verify(document(portraits["obama3"]), [jpeg(photos["obama"])] * 4, HELD)
    assert result.evidence.outcome(CheckName.FACE_MATCH).passed
    liveness = result.evidence.outcome(CheckName.LIVENESS)
    assert not liveness.passed and liveness.result == "no_turn"
    assert not result.evidence.verified


def test_expired_document_and_another_name(
    verifier: IdentityVerifier, portraits: dict[str, Photo], photos: dict[str, Photo]
) -> None:
    other = Holder("DUPONT", "JEAN", date(1990, 2, 15), "M")
    zone = card_2021_zone(other, "X4RTBPFW4", date(2025, 1, 1))
    result = verifier.verify(document(portraits["obama3"], zone), live(photos), HELD)
    evidence = result.evidence
    assert evidence.to_claims()["document_details"]["type"] == "idcard"
    assert evidence.outcome(CheckName.DOCUMENT_EXPIRY).result == "expired"
    assert evidence.outcome(CheckName.NAME_MATCH).result == "no_match"
    assert evidence.outcome(CheckName.BIRTHDATE_MATCH).passed
    assert not evidence.verified


def test_bad_inputs_are_refused_before_any_analysis(
    verifier: IdentityVerifier, portraits: dict[str, Photo], photos: dict[str, Photo]
) -> None:
    frames = live(photos)
    with pytest.raises(FramesRejected):
        verifier.verify(document(portraits["obama3"]), frames[:1], HELD)
    with pytest.raises(ImageRejected) as raised:
        verifier.verify(document(portraits["obama3"]), [*frames, frames[0][:500]], HELD)
    assert raised.value.source == "frame 4"
