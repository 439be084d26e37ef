"""Field validators: known-good values come out canonical, known-bad ones are refused without
the refusal ever repeating the value."""

from __future__ import annotations

from datetime import date

import pytest

from sharelock.connectors.validation import (
    FIELD_VALIDATORS,
    InvalidValue,
    iban_check_digits,
    rib_key,
    validate_bic,
    validate_collected,
    validate_country,
    validate_date,
    validate_email,
    validate_gender,
    validate_household_shares,
    validate_iban,
    validate_notice_reference,
    validate_phone,
    validate_postal_code,
    validate_reference_income,
    validate_tax_number,
    validate_tax_year,
    validate_text,
)
from sharelock.scopes import SCOPE_FIELDS

TODAY = date(2026, 11, 25)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("FR7630006000011234567890189", "FR7630006000011234567890189"),
        ("fr76 3000 6000 0112 3456 7890 189", "FR7630006000011234567890189"),
        ("GB82WEST12345698765432", "GB82WEST12345698765432"),
        ("GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432"),
        ("DE89370400440532013000", "DE89370400440532013000"),
        ("BE68539007547034", "BE68539007547034"),
        (
            "FR76\u00a09999\u00a00000\u00a00100\u00a00123\u00a04567\u00a0834",
            "FR7699990000010001234567834",
        ),
    ],
)
def test_iban_valid(raw: str, canonical: str) -> None:
    assert validate_iban(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "FR7630006000011234567890188",  # last digit changed
        "FR7630006000011234567890198",  # two digits swapped
        "FR7730006000011234567890189",  # check digits off
        "GB82WEST12345698765433",
        "FR763000600001123456789018",  # one digit short for France
        "GB82WEST1234569876543",
        "FR76-3000-6000",
        "7630006000011234567890189FR",
        "",
        "XX00",
    ],
)
def test_iban_invalid(raw: str) -> None:
    with pytest.raises(InvalidValue, match=r"^IBAN: "):
        validate_iban(raw)


def test_iban_french_rib_key_is_checked() -> None:
    """An IBAN whose MOD 97 is right but whose RIB key is wrong is still refused."""
    bban = "30006000011234567890188"  # key 88 instead of 89
    iban = f"FR{iban_check_digits('FR', bban)}{bban}"
    with pytest.raises(InvalidValue, match="RIB key"):
        validate_iban(iban)


def test_check_digit_helpers() -> None:
    assert rib_key("30006", "00001", "12345678901") == "89"
    assert iban_check_digits("FR", "30006000011234567890189") == "76"
    assert iban_check_digits("GB", "WEST12345698765432") == "82"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("BNPAFRPP", "BNPAFRPP"), ("bnpa fr pp xxx", "BNPAFRPPXXX"), ("DEUTDEFF500", "DEUTDEFF500")],
)
def test_bic_valid(raw: str, canonical: str) -> None:
    assert validate_bic(raw) == canonical


@pytest.mark.parametrize("raw", ["BNPAFRP", "BNPAFRPPXX", "BNP1FRPP", "BNPAF1PP", "SBOX-FR", ""])
def test_bic_invalid(raw: str) -> None:
    with pytest.raises(InvalidValue, match=r"^BIC: "):
        validate_bic(raw)


def test_dates() -> None:
    assert validate_date("1985-03-14", today=TODAY) == "1985-03-14"
    assert validate_date(" 2026-11-25 ", today=TODAY) == "2026-11-25"
    assert validate_date("2024-02-29", today=TODAY) == "2024-02-29"
    for bad in ("1990-02-31", "2023-02-29", "14/03/1985", "1985-3-14", "2026-11-26", "1899-12-31"):
        with pytest.raises(InvalidValue, match=r"^date: "):
            validate_date(bad, today=TODAY)


@pytest.mark.parametrize("raw", ["69002", "75001", "01000", "20090", "95000", "97400", "98000"])
def test_postal_code_valid(raw: str) -> None:
    assert validate_postal_code(raw) == raw


@pytest.mark.parametrize("raw", ["00100", "96000", "97700", "99000", "6900", "690021", "69 00A"])
def test_postal_code_invalid(raw: str) -> None:
    with pytest.raises(InvalidValue, match=r"^postal code: "):
        validate_postal_code(raw)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("06 12 34 56 78", "+33612345678"),
        ("01.23.45.67.89", "+33123456789"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("0033612345678", "+33612345678"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0692 12 34 56", "+262692123456"),  # La Réunion has its own country code
        ("05 96 12 34 56", "+596596123456"),
    ],
)
def test_phone_valid(raw: str, canonical: str) -> None:
    assert validate_phone(raw) == canonical


@pytest.mark.parametrize("raw", ["06 12 34", "+33 06 12 34 56 78", "+3361234567", "12345", "phone"])
def test_phone_invalid(raw: str) -> None:
    with pytest.raises(InvalidValue, match=r"^phone: "):
        validate_phone(raw)


def test_email() -> None:
    assert validate_email("Alice.Martin@Example.FR") == "Alice.Martin@example.fr"
    for bad in (
        "alice",
        "alice@",
        "@example.fr",
        "a@@example.fr",
        "a b@example.fr",
        "a@x",
        "a..b@x.fr",
    ):
        with pytest.raises(InvalidValue, match=r"^email: "):
            validate_email(bad)


def test_tax_number() -> None:
    assert validate_tax_number("1234567890123") == "1234567890123"
    assert validate_tax_number("12 34 567 890 123") == "1234567890123"
    for bad in ("123456789012", "12345678901234", "123456789012a", ""):
        with pytest.raises(InvalidValue, match=r"^tax number: "):
            validate_tax_number(bad)


def test_tax_notice_fields() -> None:
    assert validate_tax_year("2025", today=TODAY) == "2025"
    for bad in ("2027", "1989", "25", "year"):
        with pytest.raises(InvalidValue, match=r"^tax year: "):
            validate_tax_year(bad, today=TODAY)
    assert validate_reference_income("38\u202f512\u00a0€") == "38512"
    assert validate_reference_income("0") == "0"
    assert validate_reference_income("007") == "7"
    for bad in ("-1 200 €", "38512.50", "", "n/a"):
        with pytest.raises(InvalidValue, match=r"^reference income: "):
            validate_reference_income(bad)
    for raw, canonical in (("1", "1"), ("2,5", "2.5"), ("1.75", "1.75"), ("3.00", "3")):
        assert validate_household_shares(raw) == canonical
    for bad in ("0.5", "1,3", "-2", "NaN", "Infinity", "deux", ""):
        with pytest.raises(InvalidValue, match=r"^household shares: "):
            validate_household_shares(bad)
    assert validate_notice_reference("26 31 A012345 67") == "2631A01234567"
    for bad in ("XX", "2631A0123456", "2631A01234567X", "2631-01234567"):
        with pytest.raises(InvalidValue, match=r"^notice reference: "):
            validate_notice_reference(bad)


def test_gender_country_text() -> None:
    assert [validate_gender(v) for v in ("Mme", "M.", "Madame", "F", "male")] == [
        "female",
        "male",
        "female",
        "female",
        "male",
    ]
    with pytest.raises(InvalidValue):
        validate_gender("X")
    assert validate_country("France") == "FR"
    assert validate_country("be") == "BE"
    with pytest.raises(InvalidValue):
        validate_country("Fr4nce")
    assert validate_text("  12   rue de la\nRépublique ") == "12 rue de la République"
    for bad in ("", "   ", "12345", "a\x00b", "x" * 201):
        with pytest.raises(InvalidValue):
            validate_text(bad)


def test_every_field_has_a_validator() -> None:
    fields = {name for names in SCOPE_FIELDS.values() for name in names}
    assert set(FIELD_VALIDATORS) == fields


def test_collected_record_is_all_or_nothing() -> None:
    account = {
        "account_holder": "ALICE MARTIN",
        "iban": "FR76 3000 6000 0112 3456 7890 189",
        "bic": "BNPAFRPP",
    }
    good = {"bank_account": account}
    assert validate_collected(good)["bank_account"]["iban"] == "FR7630006000011234567890189"
    bad = {"bank_account": {**good["bank_account"], "iban": "FR7630006000011234567890188"}}
    with pytest.raises(InvalidValue):
        validate_collected(bad)
    with pytest.raises(InvalidValue, match="missing"):
        validate_collected({"bank_account": {"iban": "FR7630006000011234567890189"}})
    with pytest.raises(InvalidValue):
        validate_collected({"unknown": {}})


def test_messages_never_repeat_the_value() -> None:
    value = "FR7630006000011234567890188"
    with pytest.raises(InvalidValue) as caught:
        validate_iban(value)
    assert value not in str(caught.value)
    assert "30006" not in str(caught.value)
