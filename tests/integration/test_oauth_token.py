"""The token endpoint as an attacker sees it (SECURITY-CHECKLIST B 21-27, 29): PKCE, single-use
codes, replay and races, code expiry, client authentication (`client_secret_basic` and
`private_key_jwt`), all through real HTTP, Redis, SQLite, SoftHSM and the sandbox."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from sharelock.config import Retention, Settings
from sharelock.keys import KeyLayer
from tests.support.broker import (
    RegisteredPartner,
    Share,
    Stack,
    broker_stack,
    code_key,
    redis_keys,
    sqlite_url,
    token_key,
)
from tests.support.redis_server import RedisServer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert "access_token" not in body
    assert response.headers["cache-control"] == "no-store"
    return body


def assert_invalid_client(response: httpx.Response, basic: bool = True) -> None:
    """401 `invalid_client`; the Basic challenge only for a client that used HTTP Basic or no
    method at all (RFC 6749 §5.2), not for one that authenticated in the body."""
    assert_oauth_error(response, 401, "invalid_client")
    challenge = response.headers.get("www-authenticate", "")
    if basic:
        assert challenge == 'Basic realm="sharelock"', challenge
    else:
        assert "basic" not in challenge.lower(), challenge


def approved_code(stack: Stack, **share: Any) -> tuple[Share, str]:
    flow = Share(stack, **share)
    flow.collect()
    return flow, flow.approve_and_get_code()


def assert_no_data(flow: Share, token: str) -> None:
    response = flow.fetch(token)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert "data" not in response.json()


# -- PKCE (21) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "verifier",
    [
        pytest.param(lambda right: secrets.token_urlsafe(48), id="other-verifier"),
        pytest.param(lambda right: right[:-1] + ("A" if right[-1] != "A" else "B"), id="one-char"),
        pytest.param(lambda right: right[:42], id="42-chars"),
        pytest.param(lambda right: right + "x" * (129 - len(right)), id="129-chars"),
        pytest.param(lambda right: right[:43] + "=", id="padding"),
    ],
)
def test_wrong_verifier_is_invalid_grant_and_burns_the_code(stack: Stack, verifier: Any) -> None:
    flow, code = approved_code(stack)
    wrong = verifier(flow.verifier)
    assert wrong != flow.verifier
    assert_oauth_error(flow.exchange(code, code_verifier=wrong), 400, "invalid_grant")
    with stack.raw_redis() as raw:
        assert raw.exists(code_key(code)) == 0
    # The right verifier afterwards: the code is gone.
    assert_oauth_error(flow.exchange(code), 400, "invalid_grant")


def test_missing_verifier_is_refused(stack: Stack) -> None:
    flow, code = approved_code(stack)
    response = flow.exchange(code, code_verifier="")
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "invalid_grant")
    assert "access_token" not in response.json()


# -- single use, replay (23), race (24) ------------------------------------------------------


def test_code_replay_revokes_the_token_of_the_first_exchange(stack: Stack) -> None:
    flow, code = approved_code(stack)
    first = flow.exchange(code)
    assert first.status_code == 200, first.text
    token = first.json()["access_token"]
    with stack.raw_redis() as raw:
        assert raw.exists(token_key(token)) == 1
    alerts_before = len(stack.audit_rows("security_alert", client_id=flow.client_id))

    assert_oauth_error(flow.exchange(code), 400, "invalid_grant")

    with stack.raw_redis() as raw:
        assert raw.exists(token_key(token)) == 0
    assert_no_data(flow, token)
    alerts = stack.audit_rows("security_alert", client_id=flow.client_id)
    assert len(alerts) == alerts_before + 1
    assert alerts[-1].outcome == "code_replayed"
    assert not stack.audit_rows("data_delivered", flow_id=flow.flow_id)


def test_twenty_parallel_exchanges_of_one_code(stack: Stack) -> None:
    flow, code = approved_code(stack)
    barrier = threading.Barrier(20)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow.redirect_uri,
        "code_verifier": flow.verifier,
    }

    def exchange(_: int) -> httpx.Response:
        # Connected before the barrier, so that the twenty requests reach the broker together:
        # a request that only arrives after the code was redeemed is a replay (case 23), and
        # with client authentication now well under a millisecond, twenty TCP handshakes
        # started at the barrier would spread the requests over a longer time than one
        # exchange takes.
        with stack.partner_client(flow.partner) as client:
            assert client.get("/healthz").status_code == 200
            barrier.wait(timeout=30)
            return client.post("/token", data=form)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(exchange, range(20)))

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(ok) == 1, [r.text for r in responses]
    assert len(refused) == 19
    for response in refused:
        assert_oauth_error(response, 400, "invalid_grant")

    shared = flow.fetch(ok[0].json()["access_token"])
    assert shared.status_code == 200, shared.text
    assert shared.json()["data"]["bank_account"]["iban"] == "FR7699990000010001234567834"
    assert len(stack.audit_rows("data_delivered", flow_id=flow.flow_id)) == 1
    assert_no_data(flow, ok[0].json()["access_token"])
    assert len(stack.audit_rows("data_delivered", flow_id=flow.flow_id)) == 1


# -- binding of the code: client (26), redirect URI (29) -------------------------------------


def test_code_of_client_a_redeemed_by_client_b(stack: Stack) -> None:
    flow, code = approved_code(stack)
    b = stack.other_partner
    with stack.partner_client(b) as client:
        response = client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": flow.stack.partner.redirect_uri,
                "code_verifier": flow.verifier,
            },
        )
    assert_oauth_error(response, 400, "invalid_grant")
    # ... and B's attempt burned it: A cannot use it either.
    assert_oauth_error(flow.exchange(code), 400, "invalid_grant")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://partner.example/callback/",
        "https://partner.example/other",
        "https://PARTNER.example/callback",
        "https://partner.example/callback?x=1",
        "http://partner.example/callback",
        "https://other.example/cb",
    ],
)
def test_redirect_uri_at_token_must_match(stack: Stack, redirect_uri: str) -> None:
    flow, code = approved_code(stack)
    assert_oauth_error(flow.exchange(code, redirect_uri=redirect_uri), 400, "invalid_grant")
    assert_oauth_error(flow.exchange(code), 400, "invalid_grant")


def test_unknown_code_and_grant_type(stack: Stack) -> None:
    flow = Share(stack)
    assert_oauth_error(flow.exchange(secrets.token_urlsafe(32)), 400, "invalid_grant")
    with stack.partner_client() as client:
        response = client.post(
            "/token", data={"grant_type": "client_credentials", "scope": "identity"}
        )
    assert_oauth_error(response, 400, "unsupported_grant_type")


def test_a_good_exchange_answers_no_store_bearer(stack: Stack) -> None:
    flow, code = approved_code(stack)
    response = flow.exchange(code)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 300
    assert body["scope"].split() == flow.scope.split()
    assert response.headers["cache-control"] == "no-store"
    assert "refresh_token" not in body


# -- code expiry (25) ---------------------------------------------------------------------------


def test_code_expires_at_its_configured_lifetime(
    settings: Settings,
    key_layer: KeyLayer,
    sandbox_url: str,
    tmp_path: Any,
) -> None:
    lifetime = timedelta(seconds=1)
    with (
        RedisServer(tmp_path / "redis") as server,
        broker_stack(
            settings,
            key_layer,
            redis_url=server.url,
            sandbox_url=sandbox_url,
            database_url=sqlite_url(tmp_path),
            retention=Retention(authorization_code=lifetime),
        ) as short,
        server.raw_client() as raw,
    ):
        flow, code = approved_code(short)
        codes = redis_keys(raw, "sl:code:*")
        assert list(codes) == [code_key(code)]
        assert 0 < codes[code_key(code)] <= lifetime.total_seconds() * 1000
        deadline = time.monotonic() + 5
        while raw.exists(code_key(code)) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.05)
        assert_oauth_error(flow.exchange(code), 400, "invalid_grant")
        assert not short.audit_rows("data_delivered", flow_id=flow.flow_id)


# -- client authentication (27) ---------------------------------------------------------------


def token_form(code: str = "x", flow: Share | None = None) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow.redirect_uri if flow else "https://partner.example/callback",
        "code_verifier": flow.verifier if flow else secrets.token_urlsafe(48),
    }


def post_token(
    stack: Stack, data: dict[str, str], auth: tuple[str, str] | None = None
) -> httpx.Response:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        if auth is None:
            return client.post("/token", data=data)
        return client.post("/token", data=data, auth=auth)


def test_client_authentication_is_required(stack: Stack) -> None:
    flow, code = approved_code(stack)
    partner = stack.partner
    cases = {
        "none": (None, {}, True),
        "wrong-secret": ((partner.client_id, partner.client_secret + "x"), {}, True),
        "empty-secret": ((partner.client_id, ""), {}, True),
        "unknown-client": (("sl_unknown", partner.client_secret), {}, True),
        "other-client-id-in-body": (
            (partner.client_id, partner.client_secret),
            {"client_id": stack.other_partner.client_id},
            True,
        ),
        "client-secret-post": (
            None,
            {"client_id": partner.client_id, "client_secret": partner.client_secret},
            False,
        ),
    }
    for case, (auth, extra, basic) in cases.items():
        response = post_token(stack, {**token_form(code, flow), **extra}, auth)
        assert response.status_code == 401, case
        assert_invalid_client(response, basic)
    # None of these consumed the code: the partner itself still can.
    response = flow.exchange(code)
    assert response.status_code == 200, response.text


def test_malformed_basic_header(stack: Stack) -> None:
    for header in ("Basic", "Basic !!!", "Basic bm9jb2xvbg==", "Bearer abc", "Digest x"):
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            response = client.post("/token", data=token_form(), headers={"Authorization": header})
        assert_invalid_client(response)


@pytest.fixture(scope="module")
def jwt_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "partner-key-1"}, private=True)


@pytest.fixture(scope="module")
def jwt_partner(stack: Stack, jwt_key: RSAKey) -> RegisteredPartner:
    return stack.add_partner(
        "Partner JWT", jwks={"keys": [jwt_key.as_dict(private=False)]}, purpose="jwt tests"
    )


class Ago(int):
    """A time claim given relative to when the assertion is made (parametrize runs at
    collection, minutes before the test): `Ago(-120)` is two minutes in the future."""


def assertion(stack: Stack, partner: RegisteredPartner, key: RSAKey, **overrides: Any) -> str:
    now = int(time.time())
    overrides = {k: now - v if isinstance(v, Ago) else v for k, v in overrides.items()}
    claims: dict[str, Any] = {
        "iss": partner.client_id,
        "sub": partner.client_id,
        "aud": stack.settings.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    # joserfc signs only its "recommended" algorithms unless told: PS256 is named.
    return jwt.encode({"alg": "PS256", "kid": key.kid}, claims, key, algorithms=["PS256"])


def jwt_exchange(stack: Stack, flow: Share, code: str, client_assertion: str) -> httpx.Response:
    return post_token(
        stack,
        {
            **token_form(code, flow),
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion,
        },
    )


def test_private_key_jwt_valid_assertion_works(
    stack: Stack, jwt_partner: RegisteredPartner, jwt_key: RSAKey
) -> None:
    flow, code = approved_code(stack, partner=jwt_partner)
    response = jwt_exchange(stack, flow, code, assertion(stack, jwt_partner, jwt_key))
    assert response.status_code == 200, response.text
    shared = flow.fetch(response.json()["access_token"])
    assert shared.status_code == 200, shared.text
    assert shared.json()["client_id"] == jwt_partner.client_id


@pytest.mark.parametrize(
    ("case", "overrides"),
    [
        ("wrong-aud", {"aud": "https://elsewhere.example/token"}),
        ("no-aud", {"aud": None}),
        ("expired", {"iat": Ago(120), "exp": Ago(1)}),
        ("iat-in-future", {"iat": Ago(-120), "exp": Ago(-180)}),
        ("no-exp", {"exp": None}),
        ("no-jti", {"jti": None}),
        ("sub-differs", {"sub": "sl_someone_else"}),
        ("lives-too-long", {"exp": Ago(-3600)}),
    ],
)
def test_private_key_jwt_bad_claims_are_invalid_client(
    stack: Stack,
    jwt_partner: RegisteredPartner,
    jwt_key: RSAKey,
    case: str,
    overrides: dict[str, Any],
) -> None:
    flow, code = approved_code(stack, partner=jwt_partner)
    bad = assertion(stack, jwt_partner, jwt_key, **overrides)
    assert_invalid_client(jwt_exchange(stack, flow, code, bad), basic=False)
    # The code was not touched by a refused client: a good assertion still redeems it.
    good = jwt_exchange(stack, flow, code, assertion(stack, jwt_partner, jwt_key))
    assert good.status_code == 200, (case, good.text)


def test_private_key_jwt_signed_by_another_key(
    stack: Stack, jwt_partner: RegisteredPartner
) -> None:
    flow, code = approved_code(stack, partner=jwt_partner)
    stranger = RSAKey.generate_key(2048, parameters={"kid": "partner-key-1"}, private=True)
    forged = assertion(stack, jwt_partner, stranger)
    assert_invalid_client(jwt_exchange(stack, flow, code, forged), basic=False)
    unsigned = assertion(stack, jwt_partner, stranger).rsplit(".", 1)[0] + "."
    assert_invalid_client(jwt_exchange(stack, flow, code, unsigned), basic=False)


def test_private_key_jwt_replayed_jti(
    stack: Stack, jwt_partner: RegisteredPartner, jwt_key: RSAKey
) -> None:
    used = assertion(stack, jwt_partner, jwt_key)
    # First use: the client is authenticated; the made-up code is then refused.
    flow = Share(stack, partner=jwt_partner)
    first = jwt_exchange(stack, flow, secrets.token_urlsafe(32), used)
    assert_oauth_error(first, 400, "invalid_grant")
    # Same assertion again, now with a real code: refused as a replay, code untouched.
    flow, code = approved_code(stack, partner=jwt_partner)
    assert_invalid_client(jwt_exchange(stack, flow, code, used), basic=False)
    good = jwt_exchange(stack, flow, code, assertion(stack, jwt_partner, jwt_key))
    assert good.status_code == 200, good.text


def test_private_key_jwt_for_a_partner_without_keys(stack: Stack, jwt_key: RSAKey) -> None:
    flow, code = approved_code(stack)
    forged = assertion(stack, stack.partner, jwt_key)
    assert_invalid_client(jwt_exchange(stack, flow, code, forged), basic=False)
    assert flow.exchange(code).status_code == 200
