"""Checks asked for in RFC 9396 `authorization_details`, parsed into typed, frozen requests.

Each entry of `"type": "sharelock_check"` names one `check` and what the partner already holds
(docs/checks.md, "Requests"); an optional `id` (letters, digits, `.`, `_`, `-`; up to 64) comes
back with the answer. Anything else is refused with one `InvalidCheckRequest` whose message
names the entry by its position and the problem, never a value the partner sent: those are
personal data (a name, an IBAN, an address), and so may be the keys of a malformed entry.

What a partner typed stays out of the requests' `repr` too (`field(repr=False)`), so that a
request in a log line or a traceback shows which check it is and nothing about whom.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from sharelock.errors import SharelockError
from sharelock.scopes import SCOPES

CHECK_TYPE = "sharelock_check"
MAX_CHECKS = 10
MAX_TEXT = 200
MAX_RAW_LENGTH = 16_384  # characters of the JSON text, read before parsing it
MAX_AGE = 120
MAX_THRESHOLD = 10_000_000  # euros: above any reference income, below any float trouble
_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}")
_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_RIB_COUNTRIES = frozenset({"FR", "MC"})  # national check digits (RIB key) checked too


class InvalidCheckRequest(SharelockError, ValueError):
    """`authorization_details` cannot be honoured. The message is safe to show the partner:
    fixed text, an entry's position and a field's name from our own list, never a value."""

    error = "invalid_authorization_details"  # RFC 9396, section 5


class CheckName(StrEnum):
    NAME_MATCH = "name_match"
    IBAN_HOLDER_MATCH = "iban_holder_match"
    AGE_OVER = "age_over"
    ADDRESS_MATCH = "address_match"
    INCOME_BELOW = "income_below"


@dataclass(frozen=True, slots=True)
class NameMatch:
    """Are these the person's given and family names? Answered with a `Category`."""

    check: ClassVar[CheckName] = CheckName.NAME_MATCH
    needs: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType(
        {"identity": ("given_name", "family_name")}
    )
    given_name: str = field(repr=False)
    family_name: str = field(repr=False)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class IbanHolderMatch:
    """Is this IBAN the person's account at the bank she signs in to? `iban` is in electronic
    form (upper case, no spaces) and valid (ISO 13616, and the RIB key for FR and MC)."""

    check: ClassVar[CheckName] = CheckName.IBAN_HOLDER_MATCH
    needs: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType({"bank_account": ("iban",)})
    iban: str = field(repr=False)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class AgeOver:
    """Is the person at least `age` years old today? Answered true or false."""

    check: ClassVar[CheckName] = CheckName.AGE_OVER
    needs: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType({"identity": ("birthdate",)})
    age: int
    id: str | None = None


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """Is this the person's address? Answered with a `Category`."""

    check: ClassVar[CheckName] = CheckName.ADDRESS_MATCH
    needs: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType(
        {"address": ("street", "postal_code", "city")}
    )
    street: str = field(repr=False)
    postal_code: str = field(repr=False)
    city: str = field(repr=False)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class IncomeBelow:
    """Is the tax notice's reference income strictly below `threshold` euros? True or false."""

    check: ClassVar[CheckName] = CheckName.INCOME_BELOW
    needs: ClassVar[Mapping[str, tuple[str, ...]]] = MappingProxyType(
        {"tax_notice": ("reference_income",)}
    )
    threshold: int
    id: str | None = None


CheckRequest = NameMatch | IbanHolderMatch | AgeOver | AddressMatch | IncomeBelow

# The fields each check takes besides "type", "check" and "id".
CHECK_FIELDS: Mapping[CheckName, tuple[str, ...]] = MappingProxyType(
    {
        CheckName.NAME_MATCH: ("given_name", "family_name"),
        CheckName.IBAN_HOLDER_MATCH: ("iban",),
        CheckName.AGE_OVER: ("age",),
        CheckName.ADDRESS_MATCH: ("street", "postal_code", "city"),
        CheckName.INCOME_BELOW: ("threshold",),
    }
)
_COMMON_FIELDS = frozenset({"type", "check", "id"})
_CHECK_NAMES = frozenset(name.value for name in CheckName)


def required_scopes(requests: tuple[CheckRequest, ...]) -> tuple[str, ...]:
    """The scopes the checks need the source to give, in SPEC order."""
    needed = {scope for request in requests for scope in request.needs}
    return tuple(scope for scope in SCOPES if scope in needed)


def request_entry(request: CheckRequest) -> dict[str, Any]:
    """The request as its canonical `authorization_details` entry (IBAN in electronic form,
    spaces folded), JSON-serialisable: `parse_authorization_details([entry])` gives the same
    request back. It holds what the partner typed: keep it only where personal data may be."""
    entry: dict[str, Any] = {"type": CHECK_TYPE, "check": request.check.value}
    for name in CHECK_FIELDS[request.check]:
        entry[name] = getattr(request, name)
    if request.id is not None:
        entry["id"] = request.id
    return entry


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise InvalidCheckRequest("authorization_details: an object has a member twice")
    return dict(pairs)


def _reject_constant(_name: str) -> Any:
    raise InvalidCheckRequest("authorization_details: not JSON")


def _load(raw: str) -> Any:
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidCheckRequest("authorization_details: too long")
    try:
        return json.loads(
            raw, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
        )
    except InvalidCheckRequest:
        raise  # from the hooks: a member twice, NaN
    except (ValueError, RecursionError):  # JSONDecodeError, a number too long for int()…
        pass
    raise InvalidCheckRequest("authorization_details: not JSON")  # outside: no chained value


def _text(entry: Mapping[str, Any], name: str, where: str) -> str:
    value = entry[name]
    if not isinstance(value, str):
        raise InvalidCheckRequest(f"{where}: {name} must be a string")
    text = " ".join(unicodedata.normalize("NFC", value).split())
    if not text:
        raise InvalidCheckRequest(f"{where}: {name} is empty")
    if len(text) > MAX_TEXT:
        raise InvalidCheckRequest(f"{where}: {name} is longer than {MAX_TEXT} characters")
    if any(unicodedata.category(char).startswith("C") for char in text):
        raise InvalidCheckRequest(f"{where}: {name} holds control characters")
    if name != "postal_code" and not any(char.isalpha() for char in text):
        raise InvalidCheckRequest(f"{where}: {name} has no letters")
    return text


def _integer(entry: Mapping[str, Any], name: str, where: str, low: int, high: int) -> int:
    value = entry[name]
    if isinstance(value, bool) or not isinstance(value, int):  # True is an int in Python
        raise InvalidCheckRequest(f"{where}: {name} must be an integer")
    if not low <= value <= high:
        raise InvalidCheckRequest(f"{where}: {name} must be from {low} to {high}")
    return value


def _iban(entry: Mapping[str, Any], where: str) -> str:
    iban = _SPACES.sub("", _text(entry, "iban", where)).upper()
    valid = bool(_IBAN_SHAPE.fullmatch(iban))
    if valid:
        try:
            IBAN(iban, validate_bban=iban[:2] in _RIB_COUNTRIES)
        except SchwiftyException:
            valid = False  # schwifty's message quotes the IBAN: ours is raised outside
    if not valid:
        raise InvalidCheckRequest(f"{where}: iban is not a valid IBAN")
    return iban


def _postal_code(entry: Mapping[str, Any], where: str) -> str:
    code = _SPACES.sub("", _text(entry, "postal_code", where))
    if not (len(code) == 5 and code.isascii() and code.isdigit()):
        raise InvalidCheckRequest(f"{where}: postal_code must be 5 digits")
    return code


def _parse_entry(entry: Any, where: str) -> CheckRequest:
    if not isinstance(entry, dict):
        raise InvalidCheckRequest(f"{where}: not a JSON object")
    if entry.get("type") != CHECK_TYPE:
        raise InvalidCheckRequest(f"{where}: unknown type")
    name_sent = entry.get("check")
    if not isinstance(name_sent, str) or name_sent not in _CHECK_NAMES:
        raise InvalidCheckRequest(f"{where}: unknown check")
    check = CheckName(name_sent)
    expected = CHECK_FIELDS[check]
    for name in expected:
        if name not in entry:
            raise InvalidCheckRequest(f"{where}: missing field {name}")
    if set(entry) - set(expected) - _COMMON_FIELDS:
        raise InvalidCheckRequest(f"{where}: unknown field")  # its name may be personal data
    check_id = entry.get("id")
    if check_id is not None and not (isinstance(check_id, str) and _ID.fullmatch(check_id)):
        raise InvalidCheckRequest(f"{where}: id must be 1 to 64 letters, digits, '.', '_', '-'")
    match check:
        case CheckName.NAME_MATCH:
            given, family = _text(entry, "given_name", where), _text(entry, "family_name", where)
            return NameMatch(given_name=given, family_name=family, id=check_id)
        case CheckName.IBAN_HOLDER_MATCH:
            return IbanHolderMatch(iban=_iban(entry, where), id=check_id)
        case CheckName.AGE_OVER:
            return AgeOver(age=_integer(entry, "age", where, 1, MAX_AGE), id=check_id)
        case CheckName.ADDRESS_MATCH:
            return AddressMatch(
                street=_text(entry, "street", where),
                postal_code=_postal_code(entry, where),
                city=_text(entry, "city", where),
                id=check_id,
            )
        case CheckName.INCOME_BELOW:
            threshold = _integer(entry, "threshold", where, 1, MAX_THRESHOLD)
            return IncomeBelow(threshold=threshold, id=check_id)


def parse_authorization_details(raw: str | list[Any]) -> tuple[CheckRequest, ...]:
    """The checks in an `authorization_details` parameter: its JSON text (a PAR form field) or
    the array already parsed (a member of a signed request object).

    Raises `InvalidCheckRequest` for anything that is not a JSON array of 1 to `MAX_CHECKS`
    well-formed `sharelock_check` entries with distinct ids."""
    entries = _load(raw) if isinstance(raw, str) else raw
    if not isinstance(entries, list):
        raise InvalidCheckRequest("authorization_details: not a JSON array")
    if not entries:
        raise InvalidCheckRequest("authorization_details: empty")
    if len(entries) > MAX_CHECKS:
        raise InvalidCheckRequest(f"authorization_details: more than {MAX_CHECKS} entries")
    requests = tuple(
        _parse_entry(entry, f"authorization_details[{index}]")
        for index, entry in enumerate(entries)
    )
    ids = [request.id for request in requests if request.id is not None]
    if len(set(ids)) != len(ids):
        raise InvalidCheckRequest("authorization_details: two entries have the same id")
    return requests
