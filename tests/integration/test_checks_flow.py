"""Verify-don't-reveal checks through a whole share (docs/checks.md): asked at PAR in
`authorization_details`, answered from what the sandbox bank gave, shown to the person with the
answer that would be sent, declinable one by one, delivered as answers only; the values only
a check needed are never stored, shown or sent. Real HTTP, Redis, SoftHSM, SQLite, sandbox."""

from __future__ import annotations

import json
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from sharelock.sandbox.people import ALICE, ROBERT
from tests.support.broker import Share, Stack, redis_keys

ALICE_IBAN = ALICE.iban
ROBERT_IBAN = ROBERT.iban  # a valid IBAN, another sandbox person's


def _details(*checks: dict[str, Any]) -> str:
    return json.dumps([{"type": "sharelock_check", **check} for check in checks])


ALICE_CHECKS = _details(
    {"check": "name_match", "id": "name", "given_name": "alice", "family_name": "MARTIN"},
    {"check": "age_over", "id": "adult", "age": 18},
    {"check": "iban_holder_match", "id": "iban", "iban": "fr76 9999 0000 0100 0123 4567 834"},
    {
        "check": "address_match",
        "id": "home",
        "street": "12 r. de la Republique",
        "postal_code": "69002",
        "city": "LYON",
    },
    {"check": "iban_holder_match", "id": "other-iban", "iban": ROBERT_IBAN},
)


def _started(stack: Stack, details: str, scope: str | None = None) -> Share:
    share = Share(stack, scope=scope or "")
    response = share.start(scope=scope, authorization_details=details)
    assert response.status_code == 303, response.text
    return share


def _results(checks: list[dict[str, Any]]) -> dict[str, Any]:
    return {c["id"]: c.get("result", "declined" if c.get("declined") else None) for c in checks}


def test_checks_only_share_sends_answers_and_no_value(stack: Stack) -> None:
    share = _started(stack, ALICE_CHECKS)
    described = share.describe().json()
    assert described["scopes"] == [] and described["fields"] == []
    questions = [c["question"] for c in described["checks"]]
    assert questions[1] == "Are you at least 18 years old?"
    assert "FR76 9999 0000 0100 0123 4567 834" in questions[2]  # what the partner typed
    assert "sandbox-bank" in [s["id"] for s in described["data_sources"]]

    share.collect_started()
    review = share.review().json()
    assert review["fields"] == []  # nothing collected only for checks is kept for review
    answered = {c["id"]: (c["result"], c["answer"]) for c in review["checks"]}
    assert answered["name"] == ("match", "Yes, it matches")
    assert answered["adult"] == (True, "Yes")
    assert answered["iban"][0] == "match" and answered["other-iban"][0] == "no_match"
    assert answered["home"][0] == "match"  # "r." is "rue", accents and case do not count

    decision = share.browser.post(
        f"/api/flows/{share.flow_id}/decision",
        json={"approve": True, "omit": [], "decline_checks": [4]},
    )
    assert decision.status_code == 200, decision.text
    token = share.exchange(share.continue_to_partner(decision.json()["redirect_to"]))
    assert token.status_code == 200, token.text
    delivered = share.fetch(token.json()["access_token"])
    assert delivered.status_code == 200, delivered.text
    body = delivered.json()
    assert body["data"] == {} and body["scopes"] == []
    assert _results(body["checks"]) == {
        "name": "match",
        "adult": True,
        "iban": "match",
        "home": "match",
        "other-iban": "declined",
    }
    assert body["checks"][1] == {
        "type": "sharelock_check",
        "check": "age_over",
        "id": "adult",
        "age": 18,
        "result": True,
    }
    text = delivered.text
    for value in ("1985-03-14", ALICE_IBAN, "Martin", "République", "69002", "Lyon"):
        assert value not in text  # neither the source's values nor what the partner typed
    assert share.fetch(token.json()["access_token"]).status_code == 401  # once
    assert not [k for k in redis_keys(stack.raw_redis()) if share.flow_id in k]


def test_a_close_name_is_sent_only_if_the_person_agrees(stack: Stack) -> None:
    details = _details(
        {"check": "name_match", "id": "name", "given_name": "Alise", "family_name": "Martin"}
    )
    for reveal, expected in (
        (False, None),
        (True, {"given_name": "Alice", "family_name": "Martin"}),
    ):
        share = _started(stack, details)
        share.collect_started()
        (reviewed,) = share.review().json()["checks"]
        assert reviewed["result"] == "close_match" and reviewed["close_match_name"] is True
        assert "Alice Martin" in reviewed["answer"]  # the person sees what may be sent
        decision = share.browser.post(
            f"/api/flows/{share.flow_id}/decision",
            json={"approve": True, "reveal_actual_name": reveal},
        )
        token = share.exchange(share.continue_to_partner(decision.json()["redirect_to"]))
        (sent,) = share.fetch(token.json()["access_token"]).json()["checks"]
        assert sent["result"] == "close_match"
        assert sent.get("actual_name") == expected


def test_checks_beside_scopes_keep_the_scopes_data(stack: Stack) -> None:
    details = _details({"check": "income_below", "threshold": 50000})
    share = _started(stack, details, scope="identity")
    share.collect_started("1234567890123", "tax-pass", "sandbox-tax")  # Hélène
    review = share.review().json()
    assert {f["scope"] for f in review["fields"]} == {"identity"}
    assert "tax_notice" not in json.dumps(review["fields"])  # needed by the check only
    token = share.exchange(share.approve_and_get_code())
    body = share.fetch(token.json()["access_token"]).json()
    assert body["data"]["identity"]["given_name"] == "Hélène"
    assert set(body["data"]) == {"identity"}
    assert body["checks"] == [
        {"type": "sharelock_check", "check": "income_below", "threshold": 50000, "result": True}
    ]
    assert "38512" not in json.dumps(body) and "38512" not in json.dumps(review)


def test_a_signed_delivery_carries_the_answers_in_verified_claims(stack: Stack) -> None:
    partner = stack.add_partner("Checked Shop", purpose="checks", delivery_format="jws")
    share = Share(stack, scope="", partner=partner)
    details = _details({"check": "age_over", "age": 21})
    assert share.start(scope=None, authorization_details=details).status_code == 303
    share.collect_started()
    token = share.exchange(share.approve_and_get_code())
    delivered = share.fetch(token.json()["access_token"])
    assert delivered.headers["content-type"].startswith("application/jwt")
    keys = KeySet.import_key_set(httpx.get(f"{stack.url}/.well-known/jwks.json").json())
    claims = jwt.decode(delivered.text, keys, algorithms=["ES256"]).claims
    verified = claims["verified_claims"]
    assert verified["claims"] == {
        "checks": [{"type": "sharelock_check", "check": "age_over", "age": 21, "result": True}]
    }
    assert verified["verification"]["evidence"][0]["record"]["source"] == {"name": "sandbox-bank"}


def test_malformed_or_unallowed_checks_are_refused_at_par(stack: Stack) -> None:
    planted = "Zébulon-Planté"
    bad = {
        "not json": "[{",
        "unknown check": _details({"check": "favourite_colour", "given_name": planted}),
        "bad iban": _details({"check": "iban_holder_match", "iban": "FR76" + "1" * 23}),
        "extra field": _details({"check": "age_over", "age": 18, planted: planted}),
    }
    for why, details in bad.items():
        refused = Share(stack).push(authorization_details=details)
        assert refused.status_code == 400, why
        error = refused.json()
        assert error["error"] == "invalid_authorization_details", why
        assert planted not in refused.text and "1111111" not in refused.text, why
    narrow = stack.add_partner("Narrow", scopes=["address"], purpose="address only")
    share = Share(stack, scope="address", partner=narrow)
    refused = share.push(authorization_details=_details({"check": "age_over", "age": 18}))
    assert refused.json() == {
        "error": "invalid_authorization_details",
        "error_description": "a check needs a scope not allowed for this client",
    }
    no_scope_at_all = Share(stack).push(scope=None)
    assert no_scope_at_all.json()["error"] == "invalid_scope"


def test_metadata_announces_the_check_type(stack: Stack) -> None:
    meta = httpx.get(f"{stack.url}/.well-known/oauth-authorization-server").json()
    # and identity verification's (tests/integration/test_identity_share.py)
    assert meta["authorization_details_types_supported"] == [
        "sharelock_check",
        "sharelock_identity_verification",
    ]
