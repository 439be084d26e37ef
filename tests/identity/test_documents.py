"""Specimen documents read end to end (OpenCV, Tesseract, the parser): valid ones, broken ones,
and the read rate over a matrix of photographs of them (angles, sizes, JPEG quality)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from sharelock.checks import Category
from sharelock.identity import (
    DOCUMENT_LIMITS,
    DocumentType,
    HeldIdentity,
    MrzData,
    MrzFormat,
    MrzNotFound,
    TesseractMrzReader,
    decode_image,
    read_zone,
)
from sharelock.identity.document import birthdate_matches, expiry_outcome, name_category
from tests.identity.conftest import TODAY, Photo
from tests.support.specimens import (
    Holder,
    card_1988_zone,
    card_2021_zone,
    jpeg,
    passport_zone,
    photographed,
    render,
    with_wrong_digit,
)

ALICE = Holder("MARTIN", "ALICE MARIE", date(1990, 2, 15))
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def zones() -> dict[str, list[str]]:
    return {
        "passport": passport_zone(ALICE, "12AB34567", date(2032, 1, 1)),
        "card_2021": card_2021_zone(ALICE, "X4RTBPFW4", date(2031, 1, 1)),
        "card_1988": card_1988_zone(ALICE, date(2016, 3, 1)),
    }


def read(reader: TesseractMrzReader, zone: list[str], portrait: Photo, **photo: float) -> MrzData:
    page = photographed(render(zone, portrait, "IDENTITY"), **photo)
    image = decode_image(jpeg(page, 85), DOCUMENT_LIMITS, "document")
    return read_zone(reader, image, TODAY)


@pytest.mark.parametrize(
    ("kind", "layout", "document_type"),
    [
        ("passport", MrzFormat.TD3, DocumentType.PASSPORT),
        ("card_2021", MrzFormat.TD1, DocumentType.IDCARD),
        ("card_1988", MrzFormat.FRENCH_ID_1988, DocumentType.IDCARD),
    ],
)
def test_specimens_are_read_and_checked(
    mrz_reader: TesseractMrzReader,
    portraits: dict[str, Photo],
    kind: str,
    layout: MrzFormat,
    document_type: DocumentType,
) -> None:
    zone = read(mrz_reader, zones()[kind], portraits["astronaut"], angle=2.0)
    assert zone.format is layout and zone.document_type is document_type
    assert zone.check_digits_valid and zone.issuing_country == "FRA"
    assert (zone.family_name, zone.given_names) == ("MARTIN", "ALICE MARIE")
    assert zone.birthdate == date(1990, 2, 15)
    assert expiry_outcome(zone, TODAY) == "valid"
    held = HeldIdentity("Alice Marie", "Martin", date(1990, 2, 15))
    assert name_category(zone, held) is Category.MATCH and birthdate_matches(zone, held)


def test_a_wrong_check_digit_is_read_and_reported(
    mrz_reader: TesseractMrzReader, portraits: dict[str, Photo]
) -> None:
    broken = with_wrong_digit(zones()["passport"], 1, 19)  # the birthdate's
    zone = read(mrz_reader, broken, portraits["astronaut"])
    assert not zone.check_digits_valid
    assert [check.field for check in zone.check_digits if not check.valid] == [
        "birthdate",
        "composite",
    ]


def test_an_expired_document(mrz_reader: TesseractMrzReader, portraits: dict[str, Photo]) -> None:
    zone = read(
        mrz_reader, card_2021_zone(ALICE, "X4RTBPFW4", date(2024, 1, 1)), portraits["astronaut"]
    )
    assert zone.check_digits_valid and expiry_outcome(zone, TODAY) == "expired"


def test_another_name(mrz_reader: TesseractMrzReader, portraits: dict[str, Photo]) -> None:
    other = Holder("DUPONT", "JEAN", date(1990, 2, 15), "M")
    zone = read(mrz_reader, passport_zone(other, "12AB34567", date(2032, 1, 1)), portraits["obama"])
    held = HeldIdentity("Alice Marie", "Martin", date(1990, 2, 15))
    assert zone.check_digits_valid
    assert name_category(zone, held) is Category.NO_MATCH
    assert birthdate_matches(zone, held)  # same birthdate, other person: the name check decides


def test_a_photograph_without_a_zone(
    mrz_reader: TesseractMrzReader, photos: dict[str, Photo]
) -> None:
    with pytest.raises(MrzNotFound):
        read_zone(mrz_reader, photos["sample3"], TODAY)


def test_read_rate_over_photographs_of_the_specimens(
    mrz_reader: TesseractMrzReader, portraits: dict[str, Photo]
) -> None:
    """Every specimen at several angles and sizes: the share read with all check digits valid
    and the right names (written to tests/artifacts/identity-mrz-read-rate.json)."""
    conditions = [(angle, scale) for angle in (-3.0, 0.0, 4.0) for scale in (0.8, 1.0, 1.5)]
    results = {}
    for kind, zone_lines in zones().items():
        for angle, scale in conditions:
            try:
                zone = read(mrz_reader, zone_lines, portraits["obama3"], angle=angle, scale=scale)
                ok = zone.check_digits_valid and zone.family_name == "MARTIN"
                ok = ok and zone.given_names == "ALICE MARIE"
            except MrzNotFound:
                ok = False
            results[f"{kind} angle={angle} scale={scale}"] = ok
    rate = sum(results.values()) / len(results)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "identity-mrz-read-rate.json").write_text(
        json.dumps({"read_rate": rate, "readings": results}, indent=2)
    )
    print(f"MRZ read rate: {rate:.0%} of {len(results)}")
    assert rate >= 0.9, results
