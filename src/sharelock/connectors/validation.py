"""Check and normalise every value a connector collects, before anyone sees it.

A data source is a third party: its pages can change, be half broken, or hold a typo. The
broker promises partners *verified* data (SPEC, "Data categories"), so each field goes through a
validator that either returns one canonical form (an IBAN without spaces, a phone in E.164, an
ISO date) or raises `InvalidValue`. The message of `InvalidValue` names the kind of check that
failed and never the value, so it can be logged or shown without leaking personal data.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from schwifty import BIC, IBAN
from schwifty.exceptions import (
    InvalidBBANChecksum,
    InvalidChecksumDigits,
    InvalidCountryCode,
    InvalidLength,
    SchwiftyException,
)

from sharelock.documents import PDF, safe_filename
from sharelock.scopes import SCOPE_FIELDS


class InvalidValue(ValueError):
    """A collected value failed its check. The message is fixed text, never the value."""


# Countries whose BBAN is a French RIB (bank 5, branch 5, account 11, key 2): their national
# check digits, the RIB key, are checked too (schwifty's FR/MC algorithm, AFNOR letter mapping).
_RIB_COUNTRIES = frozenset({"FR", "MC"})
# schwifty's error type -> the fixed text of ours. Its own messages can hold the value.
_IBAN_ERRORS: Mapping[type[SchwiftyException], str] = MappingProxyType(
    {
        InvalidLength: "IBAN: wrong length for its country",
        InvalidChecksumDigits: "IBAN: wrong check digits",
        InvalidBBANChecksum: "IBAN: wrong RIB key",
        InvalidCountryCode: "IBAN: unknown country",
    }
)

_SPACES = re.compile(r"[\s\u00a0\u202f]+")
# ASCII only: schwifty's own character check uses `\d`, which also matches other scripts' digits.
_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]+")
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
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_PAGES = 1000
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


def validate_iban(value: str) -> str:
    """ISO 13616 (schwifty): the country's length and BBAN format, the MOD 97-10 check digits;
    for France and Monaco also the RIB key. Canonical form: upper case, no spaces.

    Other countries' national check digits are not checked, as before: for some (Germany)
    schwifty picks the method per bank from the registry it bundles, which can lag behind the
    banks, and for countries it has no algorithm for it warns on every call."""
    iban = _compact(value).upper()
    if not _IBAN_SHAPE.fullmatch(iban):
        raise InvalidValue("IBAN: malformed")
    try:
        IBAN(iban, validate_bban=iban[:2] in _RIB_COUNTRIES)
    except SchwiftyException as error:
        failure = _IBAN_ERRORS.get(type(error), "IBAN: malformed")
    else:
        return iban
    # Raised outside the `except`, so schwifty's error, whose message quotes the value, is not
    # even kept as the context of ours (`from None` would only hide it from tracebacks).
    raise InvalidValue(failure)


def validate_bic(value: str) -> str:
    """ISO 9362 (schwifty): 4 letters (institution), an existing country code, 2 letters or
    digits (location), 3 optional (branch). Digits in the institution part, which ISO 9362:2022
    allows but SWIFT does not issue, are refused as before."""
    bic = _compact(value).upper()
    try:
        BIC(bic, enforce_swift_compliance=True)
    except SchwiftyException:
        pass
    else:
        return bic
    raise InvalidValue("BIC: malformed")  # outside the `except`: see `validate_iban`


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


def validate_document(value: str) -> str:
    """A document's file: non-empty standard base64, canonical (what `sharelock.documents`
    writes; the file itself was checked there)."""
    try:
        decoded = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise InvalidValue("document: not base64") from None
    if not decoded or base64.b64encode(decoded).decode("ascii") != value:
        raise InvalidValue("document: not canonical base64")
    return value


def validate_media_type(value: str) -> str:
    """The only type a document may have."""
    if value != PDF:
        raise InvalidValue("media type: not a PDF")
    return value


def validate_filename(value: str) -> str:
    """A file name as `sharelock.documents.safe_filename` makes them."""
    if not value or safe_filename(value) != value:
        raise InvalidValue("file name: unsafe")
    return value


def validate_pages(value: str) -> str:
    """A number of pages: a whole number from 1."""
    if not _INTEGER.fullmatch(value) or not 1 <= int(value) <= _MAX_PAGES:
        raise InvalidValue("pages: not a number of pages")
    return str(int(value))


def validate_sha256(value: str) -> str:
    """A SHA-256 digest in lower-case hex."""
    if not _SHA256.fullmatch(value):
        raise InvalidValue("sha256: not 64 hex digits")
    return value


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
        "document": validate_document,
        "media_type": validate_media_type,
        "filename": validate_filename,
        "pages": validate_pages,
        "sha256": validate_sha256,
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
