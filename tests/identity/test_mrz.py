"""The zone parser and its check digits, on the published specimens of ICAO Doc 9303 and of
the French identity card, and against the independent `mrz` package."""

from __future__ import annotations

import random
import string
from datetime import date

import pytest
from mrz.base.functions import hash_string

from sharelock.identity import DocumentType, MrzFormat, MrzFormatError, check_digit, parse
from tests.identity.conftest import TODAY
from tests.support.specimens import Holder, card_1988_zone, with_wrong_digit

# ICAO Doc 9303 parts 4, 5 and 6: the Utopian specimens of Anna Maria Eriksson.
TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
)
TD2 = ("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6")
# The French card of 1988 (the ministry's specimen, Corinne Berthier).
FR_1988 = ("IDFRABERTHIER<<<<<<<<<<<<<<<<<<<<<<<", "8806923102858CORINNE<<<<<<<6512068F6")


@pytest.mark.parametrize(
    ("lines", "layout", "kind", "number"),
    [
        (TD3, MrzFormat.TD3, DocumentType.PASSPORT, "L898902C3"),
        (TD1, MrzFormat.TD1, DocumentType.IDCARD, "D23145890"),
        (TD2, MrzFormat.TD2, DocumentType.IDCARD, "D23145890"),
    ],
)
def test_icao_specimens_parse_with_every_check_digit(
    lines: tuple[str, ...], layout: MrzFormat, kind: DocumentType, number: str
) -> None:
    zone = parse(lines, TODAY)
    assert zone.format is layout and zone.document_type is kind
    assert zone.check_digits_valid and len(zone.check_digits) >= 4
    assert (zone.family_name, zone.given_names) == ("ERIKSSON", "ANNA MARIA")
    assert zone.birthdate == date(1974, 8, 12) and zone.expiry == date(2012, 4, 15)
    assert (zone.issuing_country, zone.document_number, zone.sex) == ("UTO", number, "F")


def test_french_1988_card_specimen() -> None:
    zone = parse(FR_1988, TODAY)
    assert zone.format is MrzFormat.FRENCH_ID_1988 and zone.check_digits_valid
    assert (zone.family_name, zone.given_names) == ("BERTHIER", "CORINNE")
    assert zone.birthdate == date(1965, 12, 6) and zone.document_number == "880692310285"
    # Issued in June 1988 to an adult, before 2004: ten years.
    assert zone.expiry == date(1998, 6, 1)


def test_french_1988_card_expiry_fifteen_years_for_adults_since_2004() -> None:
    adult = parse(
        tuple(card_1988_zone(Holder("DURAND", "CLAIRE", date(1980, 3, 2)), date(2015, 7, 1))), TODAY
    )
    minor = parse(
        tuple(card_1988_zone(Holder("DURAND", "LEA", date(2005, 3, 2)), date(2015, 7, 1))), TODAY
    )
    assert adult.check_digits_valid and minor.check_digits_valid
    assert adult.expiry == date(2030, 7, 1) and minor.expiry == date(2025, 7, 1)


@pytest.mark.parametrize(
    ("lines", "line", "position", "field"),
    [
        (TD3, 1, 9, "document_number"),
        (TD3, 1, 19, "birthdate"),
        (TD3, 1, 27, "expiry"),
        (TD3, 1, 43, "composite"),
        (TD1, 0, 14, "document_number"),
        (TD1, 1, 29, "composite"),
        (FR_1988, 1, 33, "birthdate"),
        (FR_1988, 1, 35, "composite"),
    ],
)
def test_a_wrong_check_digit_is_caught(
    lines: tuple[str, ...], line: int, position: int, field: str
) -> None:
    zone = parse(tuple(with_wrong_digit(list(lines), line, position)), TODAY)
    assert not zone.check_digits_valid
    assert next(check.field for check in zone.check_digits if not check.valid) == field


def test_check_digit_agrees_with_the_mrz_package() -> None:
    rng = random.Random(16)
    alphabet = string.ascii_uppercase + string.digits + "<"
    for _ in range(2000):
        field = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        assert check_digit(field) == hash_string(field), field


def test_ocr_confusions_are_mapped_back_by_field_class() -> None:
    # "O" for 0 and "S" for 5 in the dates, "0" for O in the name: read as the layout says.
    misread = (
        TD3[0].replace("ERIKSSON", "ERIKSS0N"),
        TD3[1].replace("7408122", "74O8l22").replace("l", "1"),
    )
    zone = parse(misread, TODAY)
    assert zone.check_digits_valid and zone.family_name == "ERIKSSON"


def test_centuries() -> None:
    born_2010 = parse((TD3[0], TD3[1][:13] + "1001010" + TD3[1][20:]), TODAY)
    assert born_2010.birthdate == date(2010, 1, 1)  # not in the future: 2010, not 1910
    born_1930 = parse((TD3[0], TD3[1][:13] + "3001010" + TD3[1][20:]), TODAY)
    assert born_1930.birthdate == date(1930, 1, 1)  # 2030 would be in the future


def test_other_shapes_are_refused_without_echoing_them() -> None:
    with pytest.raises(MrzFormatError) as raised:
        parse(("P<UTOERIKSSON", "L898902C3"), TODAY)
    assert "ERIKSSON" not in str(raised.value)


def test_repr_holds_no_personal_value() -> None:
    text = repr(parse(TD3, TODAY))
    for value in ("ERIKSSON", "ANNA", "L898902C3", "1974", "740812"):
        assert value not in text
