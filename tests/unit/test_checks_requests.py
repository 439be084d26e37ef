"""Parsing the checks a partner asks for in `authorization_details`: what is accepted, its
canonical form, and one typed, safe error for everything else."""

from __future__ import annotations

import json
import traceback
from typing import Any

import pytest

from sharelock.checks import (
    MAX_CHECKS,
    AddressMatch,
    AgeOver,
    CheckName,
    IbanHolderMatch,
    IncomeBelow,
    InvalidCheckRequest,
    NameMatch,
    parse_authorization_details,
    request_entry,
    required_scopes,
)
from sharelock.errors import SharelockError
from sharelock.sandbox.people import ALICE

ALICE_IBAN_TYPED = " ".join(ALICE.iban[i : i + 4] for i in range(0, len(ALICE.iban), 4)).lower()


def _entry(check: str, **members: Any) -> dict[str, Any]:
    return {"type": "sharelock_check", "check": check, **members}


NAME = _entry("name_match", given_name="Alice", family_name="Martin")
ALL_FIVE = [
    _entry("name_match", id="n-1", given_name="  Éléonore ", family_name="de  La Fontaine"),
    _entry("iban_holder_match", id="iban.2", iban=ALICE_IBAN_TYPED),
    _entry("age_over", id="age_3", age=18),
    _entry("address_match", street="128 bis bd St-Germain", postal_code="75 006", city="Paris"),
    _entry("income_below", threshold=30000),
]


def test_every_check_is_parsed_into_its_frozen_request() -> None:
    requests = parse_authorization_details(json.dumps(ALL_FIVE))
    assert requests == (
        NameMatch(given_name="Éléonore", family_name="de La Fontaine", id="n-1"),
        IbanHolderMatch(iban=ALICE.iban, id="iban.2"),  # electronic form
        AgeOver(age=18, id="age_3"),
        AddressMatch(street="128 bis bd St-Germain", postal_code="75006", city="Paris"),
        IncomeBelow(threshold=30000),
    )
    assert [request.check for request in requests] == list(CheckName)
    with pytest.raises(AttributeError):
        requests[2].age = 21  # type: ignore[misc]
    # The array already parsed (a member of a signed request object) gives the same.
    assert parse_authorization_details(ALL_FIVE) == requests


def test_canonical_entries_round_trip() -> None:
    requests = parse_authorization_details(ALL_FIVE)
    entries = [request_entry(request) for request in requests]
    assert entries[1] == {
        "type": "sharelock_check",
        "check": "iban_holder_match",
        "iban": ALICE.iban,
        "id": "iban.2",
    }
    assert "id" not in entries[4]
    assert parse_authorization_details(json.loads(json.dumps(entries))) == requests


def test_required_scopes_follow_the_spec_order() -> None:
    requests = parse_authorization_details(ALL_FIVE)
    assert required_scopes(requests) == ("identity", "address", "bank_account", "tax_notice")
    assert required_scopes(requests[2:3]) == ("identity",)
    assert dict(requests[0].needs) == {"identity": ("given_name", "family_name")}
    assert dict(requests[1].needs) == {"bank_account": ("iban",)}
    assert dict(requests[4].needs) == {"tax_notice": ("reference_income",)}


def test_ten_checks_are_accepted() -> None:
    ten = [{**NAME, "id": f"c{n}"} for n in range(MAX_CHECKS)]
    assert len(parse_authorization_details(ten)) == MAX_CHECKS


_TOO_DEEP = "[" * 5000 + "]" * 5000
_WRONG_CHECK_DIGITS = ALICE.iban[:2] + f"{(int(ALICE.iban[2:4]) + 1) % 97:02d}" + ALICE.iban[4:]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "not JSON"),
        ('[{"type": "sharelock_check", "check": "age_over", "age": NaN}]', "not JSON"),
        (_TOO_DEEP, "authorization_details"),
        (json.dumps([NAME] * 400), "too long"),
        (json.dumps(NAME), "not a JSON array"),
        ("[]", "empty"),
        (json.dumps([{**NAME, "id": f"c{n}"} for n in range(MAX_CHECKS + 1)]), "more than 10"),
        ('["name_match"]', "[0]: not a JSON object"),
        (json.dumps([NAME, {**NAME, "type": "payment_initiation"}]), "[1]: unknown type"),
        (json.dumps([{"check": "age_over", "age": 18}]), "unknown type"),
        (json.dumps([_entry("credit_score")]), "unknown check"),
        (json.dumps([_entry(["age_over"])]), "unknown check"),  # type: ignore[arg-type]
        (json.dumps([_entry("name_match", given_name="Alice")]), "missing field family_name"),
        (json.dumps([{**NAME, "locations": ["x"]}]), "unknown field"),
        (json.dumps([{**NAME, "given_name": 42}]), "given_name must be a string"),
        (json.dumps([{**NAME, "family_name": "   "}]), "family_name is empty"),
        (json.dumps([{**NAME, "family_name": "x" * 201}]), "longer than 200"),
        (json.dumps([{**NAME, "family_name": "Mar\u0000tin"}]), "control characters"),
        (json.dumps([{**NAME, "family_name": "1234"}]), "has no letters"),
        (json.dumps([_entry("iban_holder_match", iban="FR76 1234")]), "not a valid IBAN"),
        (json.dumps([_entry("iban_holder_match", iban=_WRONG_CHECK_DIGITS)]), "valid IBAN"),
        (json.dumps([_entry("iban_holder_match", iban="not an iban")]), "valid IBAN"),
        (json.dumps([_entry("age_over", age=0)]), "age must be from 1 to 120"),
        (json.dumps([_entry("age_over", age=121)]), "age must be from 1 to 120"),
        (json.dumps([_entry("age_over", age="18")]), "age must be an integer"),
        (json.dumps([_entry("age_over", age=18.0)]), "age must be an integer"),
        (json.dumps([_entry("age_over", age=True)]), "age must be an integer"),
        (json.dumps([_entry("income_below", threshold=0)]), "threshold must be from 1"),
        (json.dumps([_entry("income_below", threshold=-30000)]), "threshold must be from 1"),
        (
            json.dumps([_entry("address_match", street="1 rue X", postal_code="7500", city="P")]),
            "postal_code must be 5 digits",
        ),
        (json.dumps([{**NAME, "id": "has space"}]), "id must be"),
        (json.dumps([{**NAME, "id": "x" * 65}]), "id must be"),
        (json.dumps([{**NAME, "id": 7}]), "id must be"),
        (json.dumps([{**NAME, "id": "a"}, {**NAME, "id": "a"}]), "same id"),
        ('[{"type": "sharelock_check", "check": "age_over", "age": 18, "age": 21}]', "twice"),
    ],
)
def test_bad_requests_raise_one_typed_error(raw: str, message: str) -> None:
    with pytest.raises(InvalidCheckRequest) as caught:
        parse_authorization_details(raw)
    assert message in str(caught.value)
    assert isinstance(caught.value, SharelockError)
    assert caught.value.error == "invalid_authorization_details"


def test_a_parsed_list_is_checked_like_text() -> None:
    with pytest.raises(InvalidCheckRequest, match="not a JSON array"):
        parse_authorization_details({"type": "sharelock_check"})  # type: ignore[arg-type]
    with pytest.raises(InvalidCheckRequest, match=r"\[0\]: not a JSON object"):
        parse_authorization_details([["age_over"]])


# -- what the partner sent never comes back in an error ----------------------------------------

PLANTED = "Zephyrine-Quintavalle"
PLANTED_IBAN = "FR7699990000010001234567899"  # wrong check digits, planted digits 67899


def _planted_requests() -> list[Any]:
    return [
        "not json " + PLANTED,
        json.dumps([{**NAME, "type": PLANTED}]),
        json.dumps([_entry(PLANTED)]),
        json.dumps([{**NAME, PLANTED: "x"}]),  # an unknown member's name
        json.dumps([{**NAME, "family_name": PLANTED * 20}]),
        json.dumps([{**NAME, "family_name": PLANTED + "\u0007"}]),
        json.dumps([{**NAME, "id": PLANTED + " !"}]),
        json.dumps([{**NAME, "id": PLANTED}, {**NAME, "id": PLANTED}]),
        json.dumps([_entry("iban_holder_match", iban=PLANTED_IBAN)]),
        json.dumps([_entry("iban_holder_match", iban=PLANTED)]),
        json.dumps([_entry("age_over", age=PLANTED)]),
        json.dumps([_entry("address_match", street=PLANTED, postal_code=PLANTED, city="X")]),
    ]


@pytest.mark.parametrize("raw", _planted_requests())
def test_errors_never_echo_what_the_partner_sent(raw: str) -> None:
    with pytest.raises(InvalidCheckRequest) as caught:
        parse_authorization_details(raw)
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    for secret in (PLANTED, PLANTED.lower(), "Zephyrine", "67899"):
        assert secret not in shown
    # Nothing of the partner's is kept inside the error either (e.g. schwifty's own error).
    assert caught.value.__context__ is None or PLANTED not in str(caught.value.__context__)
    assert caught.value.__cause__ is None


def test_requests_repr_shows_no_typed_value() -> None:
    requests = parse_authorization_details(
        [
            _entry("name_match", given_name=PLANTED, family_name=PLANTED),
            _entry("iban_holder_match", iban=ALICE.iban),
            _entry("address_match", street=PLANTED, postal_code="75006", city=PLANTED),
        ]
    )
    shown = repr(requests) + str(requests)
    assert PLANTED not in shown and ALICE.iban not in shown and "75006" not in shown
    assert "NameMatch(" in shown and "IbanHolderMatch(" in shown
