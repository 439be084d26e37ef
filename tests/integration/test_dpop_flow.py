"""DPoP (RFC 9449) through whole shares over real HTTP, Redis, SQLite, SoftHSM and the sandbox,
as a partner's client sends it (proofs made with joserfc): tokens bound to the proof's key at
/token, /v1/share only with a proof by that key, `dpop_jkt` at PAR, the `fapi2` profile
(private_key_jwt and DPoP required), server nonces; and each refusal leaves the share
deliverable to the rightful holder."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from sharelock.oauth import jkt
from tests.support.broker import RegisteredPartner, Share, Stack, StackFactory
from tests.support.redis_server import RedisServer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def proof(
    key: ECKey,
    method: str,
    url: str,
    *,
    token: str | None = None,
    nonce: str | None = None,
    **claims: Any,
) -> str:
    """A DPoP proof as a client library makes one (RFC 9449 §4.2)."""
    body: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
    }
    if token is not None:
        digest = hashlib.sha256(token.encode("ascii")).digest()
        body["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    if nonce is not None:
        body["nonce"] = nonce
    body.update(claims)
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    return jwt.encode(header, body, key, algorithms=["ES256"])


def new_key() -> ECKey:
    return ECKey.generate_key("P-256")


def token_form(share: Share, code: str) -> dict[str, str]:
    assert share.partner is not None
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": share.partner.redirect_uri,
        "code_verifier": share.verifier,
    }


def exchange(share: Share, code: str, dpop: str | None) -> httpx.Response:
    headers = {"DPoP": dpop} if dpop else {}
    with share.stack.partner_client(share.partner) as client:
        return client.post("/token", data=token_form(share, code), headers=headers)


def fetch(stack: Stack, token: str, dpop: str | None, scheme: str = "DPoP") -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if dpop:
        headers["DPoP"] = dpop
    return httpx.get(f"{stack.url}/v1/share", headers=headers, timeout=30)


def approved(
    stack: Stack, partner: RegisteredPartner | None = None, **push: str
) -> tuple[Share, str]:
    share = Share(stack, partner=partner) if partner else Share(stack)
    assert share.start(**push).status_code == 303
    share.collect_started()
    return share, share.approve_and_get_code()


def assert_dpop_refusal(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert "data" not in response.json()
    if status == 401:
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("DPoP ") and 'algs="ES256 PS256 EdDSA Ed25519"' in challenge


# -- a basic partner that chooses DPoP -----------------------------------------------------------


def test_a_dpop_bound_token_delivers_only_with_a_proof_by_its_key(stack: Stack) -> None:
    key = new_key()
    share, code = approved(stack)
    issued = exchange(share, code, proof(key, "POST", f"{stack.url}/token"))
    assert issued.status_code == 200, issued.text
    assert issued.json()["token_type"] == "DPoP"
    token = issued.json()["access_token"]
    share_url = f"{stack.url}/v1/share"

    # As a bearer token, by another key, without ath, for another URL: refused, and left live.
    assert_dpop_refusal(fetch(stack, token, None, scheme="Bearer"), 401, "invalid_token")
    assert_dpop_refusal(fetch(stack, token, None), 401, "invalid_dpop_proof")
    stranger = proof(new_key(), "GET", share_url, token=token)
    assert_dpop_refusal(fetch(stack, token, stranger), 401, "invalid_token")
    assert_dpop_refusal(
        fetch(stack, token, proof(key, "GET", share_url)), 401, "invalid_dpop_proof"
    )
    elsewhere = proof(key, "GET", f"{stack.url}/v1/other", token=token)
    assert_dpop_refusal(fetch(stack, token, elsewhere), 401, "invalid_dpop_proof")
    assert stack.audit_rows("data_delivered", flow_id=share.flow_id) == []

    good = proof(key, "GET", share_url, token=token)
    delivered = fetch(stack, token, good)
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["data"]["identity"]["family_name"]
    # The same proof again is a replay, whatever the token's state.
    assert_dpop_refusal(fetch(stack, token, good), 401, "invalid_dpop_proof")
    # A fresh proof for the spent token: invalid_token, with the DPoP scheme's challenge.
    spent = fetch(stack, token, proof(key, "GET", share_url, token=token))
    assert_dpop_refusal(spent, 401, "invalid_token")


def test_a_bearer_token_is_not_taken_with_the_dpop_scheme(stack: Stack) -> None:
    share, code = approved(stack)
    issued = exchange(share, code, None)
    assert issued.json()["token_type"] == "Bearer"
    token = issued.json()["access_token"]
    key = new_key()
    dpop = proof(key, "GET", f"{stack.url}/v1/share", token=token)
    assert fetch(stack, token, dpop).status_code == 401
    assert fetch(stack, token, None, scheme="Bearer").status_code == 200


def test_dpop_jkt_at_par_binds_the_code_to_that_key(stack: Stack) -> None:
    key = new_key()
    share, code = approved(stack, dpop_jkt=jkt(key.as_dict(private=False)))
    other = exchange(share, code, proof(new_key(), "POST", f"{stack.url}/token"))
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"
    # The code is spent (single use): the binding is what refused it, not a lost race.
    share, code = approved(stack, dpop_jkt=jkt(key.as_dict(private=False)))
    bound = exchange(share, code, proof(key, "POST", f"{stack.url}/token"))
    assert bound.status_code == 200 and bound.json()["token_type"] == "DPoP"


def test_a_proof_at_par_binds_and_must_match_dpop_jkt(stack: Stack) -> None:
    key = new_key()
    share = Share(stack)
    data = share.authorize_params(dpop_jkt=jkt(new_key().as_dict(private=False)))
    del data["client_id"]
    with stack.partner_client() as client:
        mismatch = client.post(
            "/par", data=data, headers={"DPoP": proof(key, "POST", f"{stack.url}/par")}
        )
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "invalid_dpop_proof"
    assert_dpop_refusal(mismatch, 400, "invalid_dpop_proof")


def test_a_wrong_proof_at_token_does_not_burn_the_code(stack: Stack) -> None:
    key = new_key()
    share, code = approved(stack)
    stale = proof(key, "POST", f"{stack.url}/token", iat=int(time.time()) - 600)
    assert_dpop_refusal(exchange(share, code, stale), 400, "invalid_dpop_proof")
    assert exchange(share, code, proof(key, "POST", f"{stack.url}/token")).status_code == 200


# -- the fapi2 profile -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "fapi2-client"})


@pytest.fixture(scope="module")
def fapi2(stack: Stack, client_key: RSAKey) -> RegisteredPartner:
    return stack.add_partner(
        "FAPI Partner",
        jwks={"keys": [client_key.as_dict(private=False)]},
        purpose="fapi2 tests",
        profile="fapi2",
    )


def client_assertion(stack: Stack, partner: RegisteredPartner, key: RSAKey) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": partner.client_id,
        "sub": partner.client_id,
        "aud": stack.settings.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    signed = jwt.encode({"alg": "PS256", "kid": key.kid}, claims, key, algorithms=["PS256"])
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}


def test_fapi2_needs_private_key_jwt_and_dpop(
    stack: Stack, fapi2: RegisteredPartner, client_key: RSAKey
) -> None:
    share = Share(stack, partner=fapi2)
    # client_secret_basic is refused for a fapi2 partner, even with the right secret.
    refused = share.push()
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    data = share.authorize_params()
    pushed = httpx.post(
        f"{stack.url}/par", data={**data, **client_assertion(stack, fapi2, client_key)}
    )
    assert pushed.status_code == 201, pushed.text
    share.authorize_pushed(pushed.json()["request_uri"])
    share.collect_started()
    code = share.approve_and_get_code()
    form = {**token_form(share, code), **client_assertion(stack, fapi2, client_key)}
    no_proof = httpx.post(f"{stack.url}/token", data=form)
    assert_dpop_refusal(no_proof, 400, "invalid_dpop_proof")
    key = new_key()
    form = {**token_form(share, code), **client_assertion(stack, fapi2, client_key)}
    issued = httpx.post(
        f"{stack.url}/token", data=form, headers={"DPoP": proof(key, "POST", f"{stack.url}/token")}
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert issued.json()["token_type"] == "DPoP"
    delivered = fetch(stack, token, proof(key, "GET", f"{stack.url}/v1/share", token=token))
    assert delivered.status_code == 200, delivered.text


def test_metadata_announces_dpop(stack: Stack) -> None:
    meta = httpx.get(f"{stack.url}/.well-known/oauth-authorization-server").json()
    assert meta["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA", "Ed25519"]


# -- server nonces ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nonce_stack(
    make_stack: StackFactory, redis_server: RedisServer, sandbox_url: str
) -> Iterator[Stack]:
    with make_stack(
        redis_url=redis_server.url,
        sandbox_url=sandbox_url,
        dpop_nonces=True,
        service_documentation="https://docs.example/partners",
    ) as running:
        yield running


def test_nonces_are_asked_for_then_accepted(nonce_stack: Stack) -> None:
    stack = nonce_stack
    key = new_key()
    share, code = approved(stack)
    first = exchange(share, code, proof(key, "POST", f"{stack.url}/token"))
    assert_dpop_refusal(first, 400, "use_dpop_nonce")
    nonce = first.headers["dpop-nonce"]
    issued = exchange(share, code, proof(key, "POST", f"{stack.url}/token", nonce=nonce))
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    fresh = issued.headers["dpop-nonce"]
    stale = proof(key, "GET", f"{stack.url}/v1/share", token=token, nonce="not-a-nonce")
    refused = fetch(stack, token, stale)
    assert_dpop_refusal(refused, 401, "use_dpop_nonce")
    assert refused.headers["dpop-nonce"]
    good = proof(key, "GET", f"{stack.url}/v1/share", token=token, nonce=fresh)
    assert fetch(stack, token, good).status_code == 200


def test_the_operators_documentation_url_is_announced(nonce_stack: Stack) -> None:
    meta = httpx.get(f"{nonce_stack.url}/.well-known/oauth-authorization-server").json()
    assert meta["service_documentation"] == "https://docs.example/partners"
