"""Signed request objects (JAR, RFC 9101) pushed at PAR, through real HTTP, Redis, SQLite,
SoftHSM and the sandbox: the partner signs its authorization request with its registered key;
only the object's parameters count; every wrong object is `invalid_request_object` and starts
nothing; a partner registered to sign must."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.support.broker import RegisteredPartner, Share, Stack


@pytest.fixture(scope="module")
def key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "jar-1"})


@pytest.fixture(scope="module")
def signer(stack: Stack, key: ECKey) -> RegisteredPartner:
    return stack.add_partner(
        "JAR Shop",
        jwks={"keys": [key.as_dict(private=False)]},
        purpose="signed requests",
        signed_requests=True,
    )


def request_object(
    stack: Stack, share: Share, key: ECKey, header: dict[str, Any] | None = None, **claims: Any
) -> str:
    now = int(time.time())
    body: dict[str, Any] = {
        **share.authorize_params(),
        "iss": share.client_id,
        "aud": stack.url,
        "nbf": now,
        "exp": now + 300,
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(
        header or {"alg": "ES256", "typ": "oauth-authz-req+jwt", "kid": key.kid},
        body,
        key,
        algorithms=["ES256"],
    )


def push(stack: Stack, partner: RegisteredPartner, **form: str) -> httpx.Response:
    with stack.partner_client(partner) as client:
        return client.post("/par", data=form)


def test_a_signed_request_starts_a_share(
    stack: Stack, signer: RegisteredPartner, key: ECKey
) -> None:
    share = Share(stack, partner=signer)
    # Parameters beside the object are ignored: this scope would be refused if read.
    pushed = push(stack, signer, request=request_object(stack, share, key), scope="openid")
    assert pushed.status_code == 201, pushed.text
    share.authorize_pushed(pushed.json()["request_uri"])
    share.collect_started()
    token = share.exchange(share.approve_and_get_code())
    assert token.status_code == 200, token.text
    assert share.fetch(token.json()["access_token"]).status_code == 200


def test_checks_travel_as_an_array_in_the_request_object(
    stack: Stack, signer: RegisteredPartner, key: ECKey
) -> None:
    """RFC 9396 §3: in a request object, `authorization_details` is a JSON array."""
    share = Share(stack, partner=signer, scope="")
    checks = [{"type": "sharelock_check", "check": "age_over", "id": "adult", "age": 18}]
    signed = request_object(stack, share, key, scope=None, authorization_details=checks)
    pushed = push(stack, signer, request=signed)
    assert pushed.status_code == 201, pushed.text
    share.authorize_pushed(pushed.json()["request_uri"])
    share.collect_started()
    token = share.exchange(share.approve_and_get_code())
    body = share.fetch(token.json()["access_token"]).json()
    assert body["checks"] == [{**checks[0], "result": True}] and body["data"] == {}


def test_a_partner_registered_to_sign_must(stack: Stack, signer: RegisteredPartner) -> None:
    share = Share(stack, partner=signer)
    refused = share.push()
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request_object"


@pytest.mark.parametrize(
    ("case", "claims"),
    [
        ("expired", {"exp": int(time.time()) - 10, "nbf": int(time.time()) - 100}),
        ("no-nbf", {"nbf": None}),
        ("no-exp", {"exp": None}),
        ("lives-too-long", {"exp": int(time.time()) + 7200}),
        ("wrong-aud", {"aud": "https://elsewhere.example"}),
        ("wrong-iss", {"iss": "sl_someone_else"}),
        ("wrong-client-id", {"client_id": "sl_someone_else"}),
        ("not-a-string", {"scope": ["identity"]}),
    ],
)
def test_wrong_objects_are_refused(
    stack: Stack, signer: RegisteredPartner, key: ECKey, case: str, claims: dict[str, Any]
) -> None:
    share = Share(stack, partner=signer)
    refused = push(stack, signer, request=request_object(stack, share, key, **claims))
    assert refused.status_code == 400, (case, refused.text)
    assert refused.json()["error"] == "invalid_request_object", case


def test_objects_signed_otherwise_are_refused(
    stack: Stack, signer: RegisteredPartner, key: ECKey
) -> None:
    share = Share(stack, partner=signer)
    stranger = ECKey.generate_key("P-256", parameters={"kid": key.kid})
    cases = {
        "another key": request_object(stack, share, stranger),
        "wrong typ": request_object(stack, share, key, {"alg": "ES256", "typ": "dpop+jwt"}),
        "unsigned": "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.",
        "garbage": "not.a.jws",
    }
    for case, value in cases.items():
        refused = push(stack, signer, request=value)
        assert refused.status_code == 400, (case, refused.text)
        assert refused.json()["error"] == "invalid_request_object", case
