"""Check and normalise every value a connector collects, before anyone sees it.

A data source is a third party: its pages can change, be half broken, or hold a typo. The
broker promises partners *verified* data (SPEC, "Data categories"), so each field goes through a
validator that either returns one canonical form (an IBAN without spaces, a phone in E.164, an
ISO date) or raises `InvalidValue`. The message of `InvalidValue` names the kind of check that
failed and never the value, so it can be logged or shown without leaking personal data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from sharelock.scopes import SCOPE_FIELDS


class InvalidValue(ValueError):
    """A collected value failed its check. The message is fixed text, never the value."""


# ISO 13616 lengths of the SEPA countries' IBANs. Other countries get the generic bounds.
IBAN_LENGTHS: Mapping[str, int] = MappingProxyType(
    {
        "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
        "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27,
        "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20,
        "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24,
        "SE": 24, "SI": 19, "SK": 24, "SM": 27, "VA": 22,
    }
)  # fmt: skip
_IBAN_MIN, _IBAN_MAX = 15, 34
# Countries whose BBAN is a French RIB (bank 5, branch 5, account 11, key 2).
_RIB_COUNTRIES = frozenset({"FR", "MC"})
# The RIB key maps letters of an account number to digits this way (AFNOR).
_RIB_LETTERS = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "12345678912345678923456789")

_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]+")
_BIC_SHAPE = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_POSTAL = re.compile(r"[0-9]{5}")
_OVERSEAS_POSTAL_PREFIXES = frozenset(
    {"971", "972", "973", "974", "975", "976", "980", "986", "987", "988"}
)
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_FR_NATIONAL = re.compile(r"0[1-9][0-9]{8}")
# French overseas departments dial as 0XXX nationally but have their own country codes.
_OVERSEAS_DIALLING = MappingProxyType(
    {
        "0262": "262", "0263": "262", "0692": "262", "0693": "262",  # La Réunion
        "0269": "262", "0639": "262",  # Mayotte
        "0590": "590", "0690": "590", "0691": "590",  # Guadeloupe, Saint-Martin, Saint-Barth
        "0594": "594", "0694": "594",  # Guyane
        "0596": "596", "0696": "596", "0697": "596",  # Martinique
    }
)  # fmt: skip
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_TAX_NUMBER = re.compile(r"[0-9]{13}")
_NOTICE_REFERENCE = re.compile(r"[0-9A-Z]{13}")
_YEAR = re.compile(r"[0-9]{4}")
_INTEGER = re.compile(r"[0-9]+")
_MAX_TEXT = 200
_EARLIEST_DATE = date(1900, 1, 1)
_MAX_SHARES = Decimal(50)
_QUARTER = Decimal("0.25")
_GENDERS = MappingProxyType(
    {
        "female": "female", "f": "female", "mme": "female", "madame": "female",
        "male": "male", "m": "male", "m.": "male", "monsieur": "male",
    }
)  # fmt: skip
_COUNTRY_NAMES = MappingProxyType({"france": "FR", "république française": "FR"})


def _compact(value: str) -> str:
    return _SPACES.sub("", value)


def _mod97(digits_and_letters: str) -> int:
    """ISO 7064 MOD 97-10 over a string where letters stand for 10..35."""
    return int("".join(str(int(char, 36)) for char in digits_and_letters)) % 97


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits that make `country + digits + bban` a valid IBAN."""
    return f"{98 - _mod97(bban + country + '00'):02d}"


def rib_key(bank: str, branch: str, account: str) -> str:
    """The two-digit key of a French RIB (what makes a French BBAN self-checking)."""
    number = int(bank) * 89 + int(branch) * 15 + int(account.translate(_RIB_LETTERS)) * 3
    return f"{97 - number % 97:02d}"


def validate_iban(value: str) -> str:
    """ISO 13616: shape, the country's length, MOD 97-10; for France also the RIB key."""
    iban = _compact(value).upper()
    if not _IBAN_SHAPE.fullmatch(iban):
        raise InvalidValue("IBAN: malformed")
    country = iban[:2]
    expected = IBAN_LENGTHS.get(country)
    if expected is not None and len(iban) != expected:
        raise InvalidValue("IBAN: wrong length for its country")
    if not _IBAN_MIN <= len(iban) <= _IBAN_MAX:
        raise InvalidValue("IBAN: wrong length")
    if _mod97(iban[4:] + iban[:4]) != 1:
        raise InvalidValue("IBAN: wrong check digits")
    if country in _RIB_COUNTRIES:
        bban = iban[4:]
        if not (bban[:10].isdigit() and bban[21:].isdigit()):
            raise InvalidValue("IBAN: malformed French BBAN")
        if rib_key(bban[:5], bban[5:10], bban[10:21]) != bban[21:]:
            raise InvalidValue("IBAN: wrong RIB key")
    return iban


def validate_bic(value: str) -> str:
    """ISO 9362: 4 letters (institution), 2 letters (country), 2 (location), 3 optional (branch)."""
    bic = _compact(value).upper()
    if not _BIC_SHAPE.fullmatch(bic):
        raise InvalidValue("BIC: malformed")
    return bic


def validate_date(value: str, *, today: date | None = None) -> str:
    """An ISO 8601 calendar date (yyyy-mm-dd) that exists, not in the future, not before 1900."""
    text = value.strip()
    match = _ISO_DATE.fullmatch(text)
    if not match:
        raise InvalidValue("date: not yyyy-mm-dd")
    try:
        parsed = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise InvalidValue("date: no such day") from None
    if parsed > (today or date.today()):
        raise InvalidValue("date: in the future")
    if parsed < _EARLIEST_DATE:
        raise InvalidValue("date: implausibly old")
    return parsed.isoformat()


def validate_postal_code(value: str) -> str:
    """A French postal code: 5 digits starting with a department (01-95, Corsica's 20 included)
    or an overseas prefix (971-976, Monaco 980, 986-988)."""
    code = _compact(value)
    if not _POSTAL.fullmatch(code):
        raise InvalidValue("postal code: not 5 digits")
    if not (1 <= int(code[:2]) <= 95 or code[:3] in _OVERSEAS_POSTAL_PREFIXES):
        raise InvalidValue("postal code: no such department")
    return code


def validate_phone(value: str) -> str:
    """E.164, or a French national number (0X XX XX XX XX) turned into +33… (+262, +590, +594
    or +596 for the overseas departments); French E.164 numbers have 9 digits after +33."""
    phone = re.sub(r"[\s\u00a0\u202f.\-()]", "", value)
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if _FR_NATIONAL.fullmatch(phone):
        phone = "+" + _OVERSEAS_DIALLING.get(phone[:4], "33") + phone[1:]
    if not _E164.fullmatch(phone):
        raise InvalidValue("phone: not E.164 nor a French number")
    if phone.startswith("+33") and not re.fullmatch(r"\+33[1-9][0-9]{8}", phone):
        raise InvalidValue("phone: wrong length for France")
    return phone


def validate_email(value: str) -> str:
    """A sane address: one @, a dotted domain, no spaces; the domain is lower-cased."""
    email = value.strip()
    if len(email) > 254 or not _EMAIL.fullmatch(email) or ".." in email:
        raise InvalidValue("email: malformed")
    local, domain = email.rsplit("@", 1)
    labels = domain.split(".")
    if len(local) > 64 or any(label.startswith("-") or label.endswith("-") for label in labels):
        raise InvalidValue("email: malformed")
    return f"{local}@{domain.lower()}"


def validate_tax_number(value: str) -> str:
    """A French tax number (numéro fiscal): 13 digits, spaces allowed when typed."""
    number = _compact(value)
    if not _TAX_NUMBER.fullmatch(number):
        raise InvalidValue("tax number: not 13 digits")
    return number


def validate_tax_year(value: str, *, today: date | None = None) -> str:
    """The year of the income a notice is about: from 1990 to this year."""
    year = value.strip()
    if not _YEAR.fullmatch(year) or not 1990 <= int(year) <= (today or date.today()).year:
        raise InvalidValue("tax year: implausible")
    return year


def validate_reference_income(value: str) -> str:
    """Revenu fiscal de référence: a non-negative whole number of euros ("38 512 €" → 38512)."""
    amount = _compact(value).removesuffix("€").removesuffix("EUR")
    if not _INTEGER.fullmatch(amount):
        raise InvalidValue("reference income: not a non-negative whole number")
    return str(int(amount))


def validate_household_shares(value: str) -> str:
    """Nombre de parts: a decimal multiple of 0.25, at least 1 ("2,5" → "2.5")."""
    text = _compact(value).replace(",", ".")
    try:
        shares = Decimal(text)
    except InvalidOperation:
        raise InvalidValue("household shares: not a number") from None
    if not shares.is_finite() or shares < 1 or shares > _MAX_SHARES or shares % _QUARTER != 0:
        raise InvalidValue("household shares: not a multiple of 0.25 from 1")
    return f"{shares:.2f}".rstrip("0").rstrip(".")


def validate_notice_reference(value: str) -> str:
    """Référence de l'avis d'impôt: 13 digits or capital letters, spaces allowed when printed."""
    reference = _compact(value).upper()
    if not _NOTICE_REFERENCE.fullmatch(reference):
        raise InvalidValue("notice reference: not 13 characters")
    return reference


def validate_gender(value: str) -> str:
    """ "female" or "male", from what French portals print (Mme, M., Madame, Monsieur, F, M)."""
    gender = _GENDERS.get(value.strip().lower())
    if gender is None:
        raise InvalidValue("gender: unknown")
    return gender


def validate_country(value: str) -> str:
    """An ISO 3166-1 alpha-2 code; "France" as printed becomes FR."""
    text = value.strip()
    code = _COUNTRY_NAMES.get(text.lower(), text.upper())
    if not re.fullmatch(r"[A-Z]{2}", code):
        raise InvalidValue("country: not a country code")
    return code


def validate_text(value: str) -> str:
    """A name, place or street: some letters, no control characters, bounded, spaces folded."""
    text = " ".join(unicodedata.normalize("NFC", value).split())
    if not text or len(text) > _MAX_TEXT:
        raise InvalidValue("text: empty or too long")
    if any(unicodedata.category(char).startswith("C") for char in text):
        raise InvalidValue("text: control characters")
    if not any(char.isalpha() for char in text):
        raise InvalidValue("text: no letters")
    return text


FIELD_VALIDATORS: Mapping[str, Callable[[str], str]] = MappingProxyType(
    {
        "family_name": validate_text,
        "given_name": validate_text,
        "gender": validate_gender,
        "birthdate": validate_date,
        "birthplace": validate_text,
        "street": validate_text,
        "postal_code": validate_postal_code,
        "city": validate_text,
        "country": validate_country,
        "phone_number": validate_phone,
        "email": validate_email,
        "account_holder": validate_text,
        "iban": validate_iban,
        "bic": validate_bic,
        "tax_year": validate_tax_year,
        "reference_income": validate_reference_income,
        "household_shares": validate_household_shares,
        "notice_reference": validate_notice_reference,
    }
)


def validate_collected(data: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """Validate every field of every scope; all of a scope's fields must be there.

    Returns the normalised copy, or raises `InvalidValue` at the first bad or missing field: a
    half-valid record is never returned."""
    clean: dict[str, dict[str, str]] = {}
    for scope, fields in data.items():
        expected = SCOPE_FIELDS.get(scope)
        if expected is None or set(fields) != set(expected):
            raise InvalidValue("record: unknown scope or missing fields")
        clean[scope] = {name: FIELD_VALIDATORS[name](fields[name]) for name in expected}
    return clean
