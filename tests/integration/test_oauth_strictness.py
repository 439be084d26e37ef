"""OAuth strictness, through the real broker over HTTP (Redis, SQLite, SoftHSM, the sandbox):
PAR required (FAPI 2.0, RFC 9126 §5) unless the operator made the partner an exception,
repeated parameters refused everywhere (RFC 6749 §3.1), access tokens only in the
Authorization header (a token seen in a URL or a body is revoked, RFC 6750 §2, §5.3), strict
`private_key_jwt` assertions (FAPI 2.0, draft-ietf-oauth-rfc7523bis) and the challenges of
RFC 6750 §3.1 and RFC 6749 §5.2."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from sharelock.flow import flow_ref
from sharelock.flow.records import RELEASE
from tests.support.broker import (
    RegisteredPartner,
    Share,
    Stack,
    code_key,
    flow_keys,
    record_key,
    redis_keys,
    token_key,
)

# joserfc warns on each EdDSA signature that RFC 9864 prefers the name "Ed25519"; EdDSA is
# what FAPI 2.0 names and what these tests sign with on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def audit_count(stack: Stack, client_id: str, event: str | None = None) -> int:
    return len(stack.audit_rows(event, client_id=client_id))


def assert_error_page(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert "refresh" not in response.headers
    assert "set-cookie" not in response.headers


def assert_json_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert "access_token" not in body and "data" not in body
    assert response.headers["cache-control"] == "no-store"
    return body


def flow_starts(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/consent/")


@pytest.fixture(scope="module")
def exempt(stack: Stack) -> RegisteredPartner:
    return stack.add_partner(
        "Exempt partner", "https://exempt.example/cb", par_exempt=True, purpose="plain requests"
    )


# -- PAR required -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="well-formed"),
        pytest.param({"prompt": "none"}, id="redirectable-error"),
        pytest.param({"redirect_uri": "https://evil.example/cb"}, id="unregistered-redirect"),
        pytest.param({"code_challenge": None}, id="no-pkce"),
    ],
)
def test_plain_authorize_is_refused_for_a_normal_partner(
    stack: Stack, overrides: dict[str, str | None]
) -> None:
    share = Share(stack)
    rows_before = audit_count(stack, share.client_id)
    with stack.raw_redis() as raw:
        flows_before = set(redis_keys(raw, "sl:flow:*"))
        response = share.start_plain(**overrides)
        assert set(redis_keys(raw, "sl:flow:*")) == flows_before  # no flow, no session
    assert_error_page(response)
    assert "pushed authorization request" in response.text
    assert not share.flow_id
    assert audit_count(stack, share.client_id) == rows_before


def test_an_unknown_client_still_gets_the_unknown_client_page(stack: Stack) -> None:
    response = Share(stack).start_plain(client_id="sl_nobody")
    assert_error_page(response)
    assert "unknown client" in response.text
    assert "pushed authorization request" not in response.text


def test_plain_authorize_is_accepted_for_an_exempt_partner(
    stack: Stack, exempt: RegisteredPartner
) -> None:
    share = Share(stack, partner=exempt)
    response = share.start_plain()
    assert flow_starts(response), response.text
    assert audit_count(stack, exempt.client_id, "flow_started") == 1
    share.collect_started()
    token = share.exchange(share.approve_and_get_code())
    assert token.status_code == 200, token.text
    shared = share.fetch(token.json()["access_token"])
    assert shared.status_code == 200, shared.text
    assert shared.json()["client_id"] == exempt.client_id
    # An exempt partner may push its requests too.
    pushed = Share(stack, partner=exempt)
    assert flow_starts(pushed.start())


def test_metadata_requires_pushed_requests(stack: Stack) -> None:
    meta = httpx.get(f"{stack.url}/.well-known/oauth-authorization-server", timeout=10).json()
    assert meta["require_pushed_authorization_requests"] is True
    assert meta["pushed_authorization_request_endpoint"] == f"{meta['issuer']}/par"


# -- repeated parameters --------------------------------------------------------------------


def test_repeated_parameters_at_authorize(stack: Stack, exempt: RegisteredPartner) -> None:
    share = Share(stack)
    pushed = share.push()
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    good = [("client_id", share.client_id), ("request_uri", request_uri)]
    for extra in (("request_uri", request_uri), ("client_id", share.client_id), ("x", "1")):
        query = urlencode([*good, extra, extra])
        assert_error_page(share.browser.get(f"/authorize?{query}"))
    # Refused before the pushed request was looked at: it is still there, unused.
    assert flow_starts(share.authorize_pushed(request_uri))
    # A plain request (exempt partner) with a repeated parameter that is not an OAuth one.
    plain = Share(stack, partner=exempt)
    query = urlencode([*plain.authorize_params().items(), ("utm", "a"), ("utm", "b")])
    assert_error_page(plain.browser.get(f"/authorize?{query}"))


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param([("x", "1"), ("x", "1")], id="unknown-name"),
        pytest.param([("resource", "https://a.example"), ("resource", "https://b")], id="resource"),
        pytest.param([("scope", "identity")], id="scope"),
        pytest.param([("client_id", "")], id="client_id-in-body-twice"),
    ],
)
def test_repeated_parameters_at_par(stack: Stack, extra: list[tuple[str, str]]) -> None:
    share = Share(stack)
    body = [(k, v) for k, v in share.authorize_params().items() if k != "client_id"]
    if extra[0][0] == "client_id":
        extra = [("client_id", share.client_id), ("client_id", share.client_id)]
    with stack.raw_redis() as raw, stack.partner_client() as client:
        before = set(redis_keys(raw, "sl:par:*"))
        response = client.post("/par", content=urlencode([*body, *extra]), headers=FORM)
        assert set(redis_keys(raw, "sl:par:*")) == before
    body_json = assert_json_error(response, 400, "invalid_request")
    assert "request_uri" not in body_json


@pytest.mark.parametrize(
    "repeated",
    [
        pytest.param(("code", None), id="code-same-value"),
        pytest.param(("grant_type", "authorization_code"), id="grant_type"),
        pytest.param(("code_verifier", None), id="code_verifier"),
        pytest.param(("x", "1"), id="unknown-name"),
    ],
)
def test_repeated_parameters_at_token(stack: Stack, repeated: tuple[str, str | None]) -> None:
    share = Share(stack)
    share.collect()
    code = share.approve_and_get_code()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": share.redirect_uri,
        "code_verifier": share.verifier,
        "x": "1",
    }
    name, value = repeated
    pairs = [*form.items(), (name, value if value is not None else form[name])]
    with stack.partner_client() as client:
        response = client.post("/token", content=urlencode(pairs), headers=FORM)
    assert_json_error(response, 400, "invalid_request")
    # Refused before the code was looked at: the partner can still redeem it.
    with stack.raw_redis() as raw:
        assert raw.exists(code_key(code)) == 1
    assert share.exchange(code).status_code == 200


# -- access tokens outside the Authorization header -------------------------------------------


def issued_token(stack: Stack) -> tuple[Share, str]:
    share = Share(stack)
    share.collect()
    response = share.exchange(share.approve_and_get_code())
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return share, token


def assert_revoked(stack: Stack, share: Share, token: str, alerts_before: int) -> None:
    """Gone from Redis with the data it would have released, unusable in the header, one
    `security_alert` row, no delivery."""
    with stack.raw_redis() as raw:
        assert raw.exists(token_key(token)) == 0
        assert record_key(RELEASE, flow_ref(share.flow_id)) not in flow_keys(raw, share.flow_id)
    fetched = share.fetch(token)
    assert_json_error(fetched, 401, "invalid_token")
    alerts = stack.audit_rows("security_alert", client_id=share.client_id)
    assert len(alerts) == alerts_before + 1
    assert alerts[-1].outcome == "token_exposed"
    assert not stack.audit_rows("data_delivered", flow_id=share.flow_id)


def test_token_in_the_query_string_is_refused_and_revoked(stack: Stack) -> None:
    share, token = issued_token(stack)
    with stack.raw_redis() as raw:
        assert record_key(RELEASE, flow_ref(share.flow_id)) in flow_keys(raw, share.flow_id)
    alerts = audit_count(stack, share.client_id, "security_alert")
    response = httpx.get(f"{stack.url}/v1/share", params={"access_token": token}, timeout=30)
    body = assert_json_error(response, 400, "invalid_request")
    assert "Authorization header" in body["error_description"]
    assert_revoked(stack, share, token, alerts)


def test_token_in_the_query_string_is_revoked_even_with_a_header(stack: Stack) -> None:
    share, token = issued_token(stack)
    alerts = audit_count(stack, share.client_id, "security_alert")
    response = httpx.get(
        f"{stack.url}/v1/share",
        params={"access_token": token},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert_json_error(response, 400, "invalid_request")
    assert_revoked(stack, share, token, alerts)


def test_token_in_a_form_body_is_refused_and_revoked(stack: Stack) -> None:
    share, token = issued_token(stack)
    alerts = audit_count(stack, share.client_id, "security_alert")
    response = httpx.post(f"{stack.url}/v1/share", data={"access_token": token}, timeout=30)
    assert_json_error(response, 400, "invalid_request")
    assert_revoked(stack, share, token, alerts)


def test_post_share_without_a_body_token_refuses_and_keeps_the_token(stack: Stack) -> None:
    share, token = issued_token(stack)
    response = httpx.post(
        f"{stack.url}/v1/share", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert_json_error(response, 400, "invalid_request")
    # Sent in the header, it was not exposed: still good, once.
    assert share.fetch(token).status_code == 200


def test_an_unknown_token_in_the_query_costs_no_audit_row(stack: Stack) -> None:
    before = len(stack.audit_rows("security_alert"))
    response = httpx.get(
        f"{stack.url}/v1/share", params={"access_token": secrets.token_urlsafe(32)}, timeout=30
    )
    assert_json_error(response, 400, "invalid_request")
    assert len(stack.audit_rows("security_alert")) == before


# -- private_key_jwt assertions ----------------------------------------------------------------


class Keys:
    def __init__(self) -> None:
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa"}, private=True)
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec"}, private=True)
        self.ed = OKPKey.generate_key("Ed25519", parameters={"kid": "ed"}, private=True)
        self.ed448 = OKPKey.generate_key("Ed448", parameters={"kid": "ed448"}, private=True)

    def public(self) -> dict[str, Any]:
        keys = (self.rsa, self.ec, self.ed, self.ed448)
        return {"keys": [key.as_dict(private=False) for key in keys]}


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def jwt_partner(stack: Stack, keys: Keys) -> RegisteredPartner:
    return stack.add_partner("JWT partner", jwks=keys.public(), purpose="assertion tests")


def sign(
    stack: Stack,
    partner: RegisteredPartner,
    key: Any,
    alg: str = "PS256",
    **overrides: Any,
) -> str:
    """An assertion; `overrides` as offsets from now for the times (`iat=+120`: two minutes
    ahead), values for the rest, None to leave a claim out."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": partner.client_id,
        "sub": partner.client_id,
        "aud": stack.settings.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    for name, value in overrides.items():
        if name in ("iat", "exp", "nbf") and isinstance(value, int) and not isinstance(value, bool):
            value = now + value
        claims[name] = value
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])


def push_with(stack: Stack, assertion: str) -> httpx.Response:
    """`POST /par` authenticated by the assertion alone: 201 if it is accepted."""
    share = Share(stack)
    data = {k: v for k, v in share.authorize_params().items() if k != "client_id"}
    data |= {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    return httpx.post(f"{stack.url}/par", data=data, timeout=30)


def assert_refused_assertion(response: httpx.Response) -> None:
    assert_json_error(response, 401, "invalid_client")
    # It authenticated in the body: no Basic challenge (RFC 6749 §5.2).
    assert "basic" not in response.headers.get("www-authenticate", "").lower()


@pytest.mark.parametrize("alg", ["PS256", "ES256", "EdDSA", "Ed25519"])
def test_assertions_in_the_fapi_algorithms_are_accepted(
    stack: Stack, jwt_partner: RegisteredPartner, keys: Keys, alg: str
) -> None:
    key = {"PS256": keys.rsa, "ES256": keys.ec, "EdDSA": keys.ed, "Ed25519": keys.ed}[alg]
    response = push_with(stack, sign(stack, jwt_partner, key, alg))
    assert response.status_code == 201, response.text


def test_an_eddsa_assertion_redeems_a_code(
    stack: Stack, jwt_partner: RegisteredPartner, keys: Keys
) -> None:
    share = Share(stack, partner=jwt_partner)
    share.collect()
    code = share.approve_and_get_code()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": share.redirect_uri,
        "code_verifier": share.verifier,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": sign(stack, jwt_partner, keys.ed, "EdDSA"),
    }
    response = httpx.post(f"{stack.url}/token", data=form, timeout=30)
    assert response.status_code == 200, response.text
    assert share.fetch(response.json()["access_token"]).json()["client_id"] == (
        jwt_partner.client_id
    )


def test_rs256_and_ed448_are_refused(
    stack: Stack, jwt_partner: RegisteredPartner, keys: Keys
) -> None:
    assert_refused_assertion(push_with(stack, sign(stack, jwt_partner, keys.rsa, "RS256")))
    assert_refused_assertion(push_with(stack, sign(stack, jwt_partner, keys.ed448, "EdDSA")))
    # The same keys with an allowed pairing still work: the refusals are about the algorithm.
    assert push_with(stack, sign(stack, jwt_partner, keys.rsa, "PS256")).status_code == 201


@pytest.mark.parametrize(
    "aud",
    [
        pytest.param("{issuer}/token", id="token-endpoint"),
        pytest.param("{issuer}/par", id="par-endpoint"),
        pytest.param("{issuer}/", id="trailing-slash"),
        pytest.param(["{issuer}"], id="array-of-the-issuer"),
        pytest.param(["{issuer}", "https://other.example"], id="array-with-the-issuer"),
        pytest.param("https://other.example", id="another-server"),
        pytest.param(None, id="missing"),
    ],
)
def test_aud_must_be_exactly_the_issuer(
    stack: Stack, jwt_partner: RegisteredPartner, keys: Keys, aud: Any
) -> None:
    issuer = stack.settings.issuer
    if isinstance(aud, str):
        aud = aud.format(issuer=issuer)
    elif isinstance(aud, list):
        aud = [a.format(issuer=issuer) for a in aud]
    assert_refused_assertion(push_with(stack, sign(stack, jwt_partner, keys.rsa, aud=aud)))


@pytest.mark.parametrize(
    "times",
    [
        pytest.param({"nbf": 120}, id="nbf-in-the-future"),
        pytest.param({"nbf": "0"}, id="nbf-not-a-number"),
        pytest.param({"iat": None}, id="no-iat"),
        pytest.param({"iat": 120, "exp": 180}, id="iat-in-the-future"),
        pytest.param({"iat": True}, id="iat-boolean"),
        pytest.param({"exp": None}, id="no-exp"),
        pytest.param({"iat": -120, "exp": -1}, id="expired"),
        pytest.param({"exp": 301}, id="exp-minus-iat-301"),
        pytest.param({"iat": -400, "exp": 10}, id="backdated-iat-too-long"),
        pytest.param({"exp": float("nan")}, id="exp-nan"),
    ],
)
def test_assertion_times_are_strict(
    stack: Stack, jwt_partner: RegisteredPartner, keys: Keys, times: dict[str, Any]
) -> None:
    assert_refused_assertion(push_with(stack, sign(stack, jwt_partner, keys.rsa, **times)))


@pytest.mark.parametrize(
    "times",
    [
        pytest.param({"nbf": -10}, id="nbf-in-the-past"),
        pytest.param({"nbf": 30}, id="nbf-within-skew"),
        pytest.param({"iat": 30, "exp": 200}, id="iat-within-skew"),
        pytest.param({"exp": 300}, id="exp-minus-iat-300"),
    ],
)
def test_assertion_times_within_the_rules_are_accepted(
    stack: Stack, jwt_partner: RegisteredPartner, keys: Keys, times: dict[str, Any]
) -> None:
    response = push_with(stack, sign(stack, jwt_partner, keys.rsa, **times))
    assert response.status_code == 201, response.text


def test_an_assertion_is_single_use_across_endpoints(
    stack: Stack, jwt_partner: RegisteredPartner, keys: Keys
) -> None:
    used = sign(stack, jwt_partner, keys.ec, "ES256")
    assert push_with(stack, used).status_code == 201
    assert_refused_assertion(push_with(stack, used))
    form = {
        "grant_type": "authorization_code",
        "code": secrets.token_urlsafe(32),
        "redirect_uri": jwt_partner.redirect_uri,
        "code_verifier": secrets.token_urlsafe(48),
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": used,
    }
    assert_refused_assertion(httpx.post(f"{stack.url}/token", data=form, timeout=30))


# -- challenges -------------------------------------------------------------------------------

_BEARER_ERROR = re.compile(
    r'Bearer realm="sharelock", error="invalid_token", error_description="[^"\\]+"'
)


def test_share_without_credentials_gets_a_bare_bearer_challenge(stack: Stack) -> None:
    response = httpx.get(f"{stack.url}/v1/share", timeout=30)
    assert_json_error(response, 401, "invalid_token")
    assert response.headers["www-authenticate"] == 'Bearer realm="sharelock"'


@pytest.mark.parametrize(
    "authorization",
    ["Bearer sl-made-up-token-0123456789abcdef", "Bearer", "Basic YTpi", "Token abc"],
)
def test_share_with_a_bad_token_gets_invalid_token(stack: Stack, authorization: str) -> None:
    response = httpx.get(
        f"{stack.url}/v1/share", headers={"Authorization": authorization}, timeout=30
    )
    assert_json_error(response, 401, "invalid_token")
    assert _BEARER_ERROR.fullmatch(response.headers["www-authenticate"])


def test_auditor_api_challenges_the_same_way(stack: Stack) -> None:
    bare = httpx.get(f"{stack.url}/audit/verify", timeout=30)
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == 'Bearer realm="sharelock"'
    wrong = httpx.get(
        f"{stack.url}/audit/verify",
        headers={"Authorization": f"Bearer {secrets.token_urlsafe(32)}"},
        timeout=30,
    )
    assert wrong.status_code == 401
    assert _BEARER_ERROR.fullmatch(wrong.headers["www-authenticate"])


@pytest.mark.parametrize("endpoint", ["/token", "/par"])
def test_invalid_client_challenges_the_method_used(
    stack: Stack, jwt_partner: RegisteredPartner, keys: Keys, endpoint: str
) -> None:
    partner = stack.partner
    form = {
        "grant_type": "authorization_code",
        "code": "x",
        "redirect_uri": partner.redirect_uri,
        "code_verifier": secrets.token_urlsafe(48),
        **{k: v for k, v in Share(stack).authorize_params().items() if k != "client_id"},
    }
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        no_method = client.post(endpoint, data=form)
        wrong_basic = client.post(endpoint, data=form, auth=(partner.client_id, "wrong"))
        secret_post = client.post(
            endpoint,
            data={**form, "client_id": partner.client_id, "client_secret": partner.client_secret},
        )
        expired = sign(stack, jwt_partner, keys.rsa, iat=-120, exp=-1)
        bad_jwt = client.post(
            endpoint,
            data={**form, "client_assertion_type": ASSERTION_TYPE, "client_assertion": expired},
        )
    for response in (no_method, wrong_basic):
        assert_json_error(response, 401, "invalid_client")
        assert response.headers["www-authenticate"] == 'Basic realm="sharelock"'
    for response in (secret_post, bad_jwt):
        assert_json_error(response, 401, "invalid_client")
        assert "www-authenticate" not in response.headers
