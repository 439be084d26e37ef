"""Field validators: known-good values come out canonical, known-bad ones are refused without
the refusal ever repeating the value."""

from __future__ import annotations

from datetime import date

import pytest

from sharelock.connectors.validation import (
    FIELD_VALIDATORS,
    InvalidValue,
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
        ("FR14 2004 1010 0505 0001 3M02 606", "FR1420041010050500013M02606"),  # letter in RIB
        ("MC58 1122 2000 0101 2345 6789 030", "MC5811222000010123456789030"),  # a RIB too
        ("IT60 X054 2811 1010 0000 0123 456", "IT60X0542811101000000123456"),
        ("nl91abna0417164300", "NL91ABNA0417164300"),
        ("ES91 2100 0418 4502 0005 1332", "ES9121000418450200051332"),
        ("CH93 0076 2011 6238 5295 7", "CH9300762011623852957"),
        ("PL61 1090 1014 0000 0712 1981 2874", "PL61109010140000071219812874"),
        ("AT61 1904 3002 3457 3201", "AT611904300234573201"),
        ("PT50 0002 0123 1234 5678 9015 4", "PT50000201231234567890154"),
        ("SE45 5000 0000 0583 9825 7466", "SE4550000000058398257466"),
        ("NO93 8601 1117 947", "NO9386011117947"),
        ("IE29 AIBK 9311 5212 3456 78", "IE29AIBK93115212345678"),
    ],
)
def test_iban_valid(raw: str, canonical: str) -> None:
    assert validate_iban(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "failure"),
    [
        ("DE88370400440532013000", "wrong check digits"),
        ("NL92ABNA0417164300", "wrong check digits"),
        ("IT61X0542811101000000123456", "wrong check digits"),
        ("ES9121000418450200051333", "wrong check digits"),  # last digit off
        ("DE8937040044053201300", "wrong length for its country"),  # one short
        ("NL91ABNA04171643001", "wrong length for its country"),  # one long
        ("BE6853900754703", "wrong length for its country"),
        ("XX82WEST12345698765432", "unknown country"),
        ("FR76\u0663\u0660\u0660\u0660\u0666", "malformed"),  # Arabic-Indic digits
        ("IT6010542811101000000123456", "malformed"),  # right length, no CIN letter
    ],
)
def test_iban_invalid_says_which_check(raw: str, failure: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        validate_iban(raw)
    assert str(caught.value) == f"IBAN: {failure}"


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


@pytest.mark.parametrize(
    "iban",
    [
        "FR0630006000011234567890188",  # RIB 30006 00001 12345678901 key 88 instead of 89
        "FR8420041010050500013M02607",  # key 07 instead of 06 (letter M in the account)
        "MC3111222000010123456789031",  # Monaco uses the RIB: key 31 instead of 30
    ],
)
def test_iban_french_rib_key_is_checked(iban: str) -> None:
    """An IBAN whose MOD 97 check digits are right (computed for the wrong BBAN) but whose RIB
    key is wrong is still refused."""
    assert int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1
    with pytest.raises(InvalidValue, match=r"^IBAN: wrong RIB key$"):
        validate_iban(iban)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("BNPAFRPP", "BNPAFRPP"),
        ("bnpa fr pp xxx", "BNPAFRPPXXX"),
        ("DEUTDEFF500", "DEUTDEFF500"),
        ("SBOXFRPPMRS", "SBOXFRPPMRS"),
        ("BNPAFRP0", "BNPAFRP0"),  # digits are fine in the location
    ],
)
def test_bic_valid(raw: str, canonical: str) -> None:
    assert validate_bic(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "BNPAFRP",
        "BNPAFRPPXX",
        "BNP1FRPP",  # ISO 9362:2022 allows it, SWIFT issues none
        "BNPAF1PP",
        "SBOX-FR",
        "",
        "SBOXXXPP",  # no such country
    ],
)
def test_bic_invalid(raw: str) -> None:
    with pytest.raises(InvalidValue, match=r"^BIC: ") as caught:
        validate_bic(raw)
    assert caught.value.__context__ is None


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


@pytest.mark.parametrize(
    "value",
    [
        "FR7630006000011234567890188",  # check digits
        "FR0630006000011234567890188",  # RIB key
        "FR763000600001123456789018",  # length
        "XX82WEST12345698765432",  # country
        "FR76-3000-6000",  # shape
        "IT6010542811101000000123456",  # BBAN format
    ],
)
def test_messages_never_repeat_the_value(value: str) -> None:
    """Not in our message, and not in a chained exception either (schwifty's messages quote
    the value)."""
    with pytest.raises(InvalidValue) as caught:
        validate_iban(value)
    assert value not in str(caught.value)
    assert "30006" not in str(caught.value)
    assert caught.value.__context__ is None
    assert caught.value.__cause__ is None
