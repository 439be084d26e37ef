"""Identity verification asked in `authorization_details` (oauth/identity_details.py): the
entry split from the checks, made canonical, and every malformed form refused with a message
that quotes nothing the partner sent."""

from __future__ import annotations

import json

import pytest

from sharelock.oauth import AuthorizationRequest
from sharelock.oauth.errors import InvalidAuthorizationDetails
from sharelock.oauth.identity_details import split_details

IDV = {"type": "sharelock_identity_verification", "document_types": ["id_card", "passport"]}
CHECK = {"type": "sharelock_check", "check": "age_over", "age": 18}


def test_the_entry_is_split_from_the_checks_and_made_canonical() -> None:
    identity, others = split_details(json.dumps([CHECK, IDV]))
    assert identity == {
        "type": "sharelock_identity_verification",
        "document_types": ["passport", "id_card"],
    }
    assert others == [CHECK]
    assert split_details([CHECK]) == (None, [CHECK])


@pytest.mark.parametrize(
    ("details", "problem"),
    [
        ([IDV, IDV], "authorization_details[1]: identity verification asked twice"),
        ([{**IDV, "document_types": ["passport", "passport"]}], "has a type twice"),
        ([{**IDV, "document_types": "passport"}], "must be a non-empty array"),
        ([{**IDV, "document_types": ["Alice Martin"]}], "may hold passport, id_card"),
        ([{**IDV, "Alice Martin": 1}], "authorization_details[0]: unknown field"),
        ({"type": "sharelock_identity_verification"}, "not a JSON array"),
    ],
)
def test_malformed_entries_are_refused_without_echo(details: object, problem: str) -> None:
    with pytest.raises(InvalidAuthorizationDetails) as refused:
        split_details(json.dumps(details))
    assert problem in str(refused.value)
    assert "Alice" not in str(refused.value)


def test_duplicate_members_and_oversized_text_are_refused() -> None:
    with pytest.raises(InvalidAuthorizationDetails, match="a member twice"):
        split_details('[{"type": "sharelock_identity_verification", "type": "x"}]')
    with pytest.raises(InvalidAuthorizationDetails, match="too long"):
        split_details(json.dumps([IDV] * 400))


def test_the_request_keeps_it_through_storage_and_says_nothing_of_it_in_its_repr() -> None:
    request = AuthorizationRequest(
        "client", "https://p.example/cb", (), None, "c" * 43,
        check_scopes=("identity",), identity_verification=split_details([IDV])[0],
    )  # fmt: skip
    again = AuthorizationRequest.from_json(json.loads(json.dumps(request.to_json())))
    assert again == request and again.collect_scopes == ("identity",)
    assert "identity_verification=True" in repr(request) and "passport" not in repr(request)
