"""The authorization endpoint and pushed requests as an attacker sees them (SECURITY-CHECKLIST B
19-20, 28, 30-33): what is redirected (with `state` and `iss`), what is shown at the broker and
never redirected, PAR, and the user's refusal, over real HTTP, Redis, SQLite, SoftHSM.

PAR is required, so each validation is checked on both paths a request can take: pushed to
`/par` (a JSON error to the partner's back end, nothing to redirect) and sent plainly to
`/authorize` by a partner the operator registered as an exception (`par_exempt`), where the
errors are redirected or shown at the broker as before."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from sharelock.config import Retention, Settings
from sharelock.flow.records import COLLECTED, FLOW
from sharelock.keys import KeyLayer
from tests.support.broker import (
    REDIRECT_URI,
    RegisteredPartner,
    Share,
    Stack,
    broker_stack,
    flow_keys,
    record_key,
    redis_keys,
    sqlite_url,
)
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def issuer(stack: Stack) -> str:
    metadata = httpx.get(f"{stack.url}/.well-known/oauth-authorization-server", timeout=10)
    assert metadata.status_code == 200
    value: str = metadata.json()["issuer"]
    assert metadata.json()["authorization_response_iss_parameter_supported"] is True
    return value


@pytest.fixture(scope="module")
def exempt(stack: Stack) -> RegisteredPartner:
    """A partner allowed to send plain authorization requests, with the usual redirect URI."""
    return stack.add_partner(
        "Plain partner", REDIRECT_URI, par_exempt=True, purpose="plain authorize tests"
    )


def flows_of(stack: Stack, client_id: str) -> int:
    return len(stack.audit_rows("flow_started", client_id=client_id))


def assert_error_redirect(
    response: httpx.Response, error: str, share: Share, issuer: str
) -> dict[str, list[str]]:
    """A 303 to the exact registered redirect URI with error, the request's state and iss."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    base, _, query = location.partition("?")
    assert base == share.redirect_uri
    params = parse_qs(query, keep_blank_values=True)
    assert params["error"] == [error], params
    assert params["state"] == [share.state]
    assert params["iss"] == [issuer]
    assert "code" not in params
    assert "set-cookie" not in response.headers
    return params


def assert_error_page(response: httpx.Response) -> None:
    """Shown at the broker: an HTML page, no redirect, nothing that could act as one."""
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert "refresh" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "set-cookie" not in response.headers
    assert "Traceback" not in response.text
    assert "http-equiv" not in response.text.lower()


def assert_par_refused(response: httpx.Response, error: str) -> None:
    """A pushed request refused: JSON to the partner's back end, nothing issued, nothing to
    follow."""
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error, response.json()
    assert "request_uri" not in response.json()
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"


def authorize(share: Share, params: dict[str, str]) -> httpx.Response:
    return share.browser.get("/authorize", params=params)


# -- redirected errors (19, 20, 33) -------------------------------------------------------------


@pytest.mark.parametrize("missing", ["code_challenge", "code_challenge_method"])
def test_authorization_without_code_challenge(
    stack: Stack, exempt: RegisteredPartner, issuer: str, missing: str
) -> None:
    share = Share(stack, partner=exempt)
    before = flows_of(stack, share.client_id), flows_of(stack, stack.partner.client_id)
    params = share.authorize_params(**{missing: None})
    assert_error_redirect(authorize(share, params), "invalid_request", share, issuer)
    assert_par_refused(Share(stack).push(**{missing: None}), "invalid_request")
    assert (flows_of(stack, share.client_id), flows_of(stack, stack.partner.client_id)) == before


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"code_challenge_method": "plain"}, id="plain"),
        pytest.param({"code_challenge_method": "s256"}, id="lower-case-method"),
        pytest.param({"code_challenge_method": "S512"}, id="unknown-method"),
        pytest.param({"code_challenge": "A" * 42}, id="42-chars"),
        pytest.param({"code_challenge": "A" * 44}, id="44-chars"),
        pytest.param({"code_challenge": "A" * 128}, id="128-chars"),
        pytest.param({"code_challenge": "A" * 42 + "="}, id="padded"),
        pytest.param({"code_challenge": "A" * 41 + "+/"}, id="standard-base64"),
        pytest.param({"code_challenge": "A" * 42 + " "}, id="space"),
        pytest.param({"code_challenge": ""}, id="empty"),
    ],
)
def test_plain_or_malformed_challenge(
    stack: Stack, exempt: RegisteredPartner, issuer: str, overrides: dict[str, str]
) -> None:
    share = Share(stack, partner=exempt)
    before = flows_of(stack, share.client_id)
    response = authorize(share, share.authorize_params(**overrides))
    assert_error_redirect(response, "invalid_request", share, issuer)
    assert flows_of(stack, share.client_id) == before
    assert_par_refused(Share(stack).push(**overrides), "invalid_request")


def test_prompt_none_is_interaction_required(
    stack: Stack, exempt: RegisteredPartner, issuer: str
) -> None:
    share = Share(stack, partner=exempt)
    response = authorize(share, share.authorize_params(prompt="none"))
    assert_error_redirect(response, "interaction_required", share, issuer)
    assert_par_refused(Share(stack).push(prompt="none"), "interaction_required")


@pytest.mark.parametrize("scope", ["medical_records", "identity medical_records", "", "IDENTITY"])
def test_unknown_or_missing_scope(
    stack: Stack, exempt: RegisteredPartner, issuer: str, scope: str
) -> None:
    share = Share(stack, partner=exempt)
    response = authorize(share, share.authorize_params(scope=scope))
    assert_error_redirect(response, "invalid_scope", share, issuer)
    assert_par_refused(Share(stack).push(scope=scope), "invalid_scope")


def test_scope_not_allowed_for_the_client(stack: Stack, issuer: str) -> None:
    narrow = stack.add_partner(
        "Address only", "https://narrow.example/cb", ["address"], par_exempt=True
    )
    share = Share(stack, partner=narrow, scope="address bank_account")
    before = flows_of(stack, narrow.client_id)
    assert_error_redirect(
        authorize(share, share.authorize_params()), "invalid_scope", share, issuer
    )
    assert_par_refused(share.push(), "invalid_scope")
    assert flows_of(stack, narrow.client_id) == before
    # The scopes it is allowed: a flow starts.
    allowed = Share(stack, partner=narrow, scope="address")
    assert allowed.start().status_code == 303
    assert allowed.flow_id


def test_scopes_no_single_source_provides_are_invalid_scope(
    stack: Stack, exempt: RegisteredPartner, issuer: str
) -> None:
    """Bank details and a tax notice come from two different sources: no flow could ever
    complete, so the partner hears `invalid_scope` at once (with state and iss when
    redirected), instead of a person stuck on a page where no service can help (issue 13)."""
    scope = "bank_account tax_notice"
    before = flows_of(stack, exempt.client_id)
    share = Share(stack, partner=exempt, scope=scope)
    query = assert_error_redirect(
        authorize(share, share.authorize_params()), "invalid_scope", share, issuer
    )
    assert "no data source" in query["error_description"][0]
    assert flows_of(stack, exempt.client_id) == before
    refused = Share(stack, scope=scope).push()
    assert_par_refused(refused, "invalid_scope")
    # Each alone is fine; so is email with an address (the telecom operator, the supplier).
    for providable in ("bank_account", "tax_notice", "address email"):
        assert Share(stack, scope=providable).start().status_code == 303, providable


def test_unsupported_response_type(stack: Stack, exempt: RegisteredPartner, issuer: str) -> None:
    share = Share(stack, partner=exempt)
    for response_type in ("token", "code id_token", ""):
        response = authorize(share, share.authorize_params(response_type=response_type))
        assert_error_redirect(response, "unsupported_response_type", share, issuer)
        pushed = Share(stack).push(response_type=response_type)
        assert_par_refused(pushed, "unsupported_response_type")


def test_state_is_echoed_exactly_and_an_oversized_one_is_not(
    stack: Stack, exempt: RegisteredPartner, issuer: str
) -> None:
    share = Share(stack, partner=exempt, state="a b&c=d/é?#")
    response = authorize(share, share.authorize_params(prompt="none"))
    assert_error_redirect(response, "interaction_required", share, issuer)
    huge = Share(stack, partner=exempt, state="s" * 600)
    response = authorize(huge, huge.authorize_params())
    assert response.status_code == 303
    params = parse_qs(urlsplit(response.headers["location"]).query)
    assert params["error"] == ["invalid_request"]
    assert "state" not in params
    assert_par_refused(Share(stack, state="s" * 600).push(), "invalid_request")


# -- errors shown at the broker, never redirected (28) ----------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        pytest.param("https://partner.example/other", id="different-path"),
        pytest.param("https://partner.example/callback/", id="trailing-slash"),
        pytest.param("https://partner.example/Callback", id="path-case"),
        pytest.param("https://PARTNER.EXAMPLE/callback", id="host-case"),
        pytest.param("HTTPS://partner.example/callback", id="scheme-case"),
        pytest.param("https://partner.example/callback?extra=1", id="extra-query"),
        pytest.param("https://partner.example/callback?", id="empty-query"),
        pytest.param("https://partner.example/callback#frag", id="fragment"),
        pytest.param("http://partner.example/callback", id="http"),
        pytest.param("https://partner.example:8443/callback", id="other-port"),
        pytest.param("https://partner.example:443/callback", id="explicit-port"),
        pytest.param("https://partner.example@evil.example/callback", id="userinfo-evil"),
        pytest.param("https://evil.example@partner.example/callback", id="userinfo"),
        pytest.param("https://partner.example.evil.example/callback", id="suffix-host"),
        pytest.param("https://partner.example/%63allback", id="percent-encoded-char"),
        pytest.param("https://partner.example/callback%2F..%2F..%2Fevil", id="encoded-dots"),
        pytest.param("https://partner.example/callback/../callback", id="dot-segments"),
        pytest.param("https://partner.example%2Fcallback@evil.example", id="encoded-slash"),
        pytest.param("https://partner.example/callback%00", id="nul"),
        pytest.param(" https://partner.example/callback", id="leading-space"),
        pytest.param("//partner.example/callback", id="scheme-relative"),
        pytest.param("https://other.example/cb", id="other-clients-uri"),
        pytest.param("", id="empty"),
    ],
)
def test_redirect_uri_variants_get_an_error_page(
    stack: Stack, exempt: RegisteredPartner, redirect_uri: str
) -> None:
    share = Share(stack, partner=exempt)
    before = flows_of(stack, share.client_id)
    response = authorize(share, share.authorize_params(redirect_uri=redirect_uri))
    assert_error_page(response)
    assert flows_of(stack, share.client_id) == before
    # Pushed: refused to the partner's back end, never redirected either.
    assert_par_refused(Share(stack).push(redirect_uri=redirect_uri), "invalid_request")


def test_missing_redirect_uri_gets_an_error_page(stack: Stack, exempt: RegisteredPartner) -> None:
    share = Share(stack, partner=exempt)
    assert_error_page(authorize(share, share.authorize_params(redirect_uri=None)))
    assert_par_refused(Share(stack).push(redirect_uri=None), "invalid_request")


@pytest.mark.parametrize("client_id", ["sl_unknown-client", "", "x" * 300, "../../etc"])
def test_unknown_client_gets_an_error_page(stack: Stack, client_id: str) -> None:
    share = Share(stack)
    response = authorize(share, share.authorize_params(client_id=client_id, prompt="none"))
    assert_error_page(response)


def test_an_invalid_scope_of_an_unverified_redirect_is_not_redirected(
    stack: Stack, exempt: RegisteredPartner
) -> None:
    """The redirect URI is checked before anything else may be sent there (33)."""
    bad = {
        "redirect_uri": "https://evil.example/cb",
        "scope": "medical",
        "prompt": "none",
        "code_challenge": None,
    }
    share = Share(stack, partner=exempt)
    assert_error_page(authorize(share, share.authorize_params(**bad)))
    assert_par_refused(Share(stack).push(**bad), "invalid_request")


@pytest.mark.parametrize(
    "repeated", ["redirect_uri", "client_id", "state", "scope", "code_challenge", "response_type"]
)
def test_duplicate_parameters_are_refused(
    stack: Stack, exempt: RegisteredPartner, repeated: str
) -> None:
    share = Share(stack, partner=exempt)
    params = list(share.authorize_params().items())
    value = "https://evil.example/cb" if repeated == "redirect_uri" else "other"
    query = urlencode([*params, (repeated, value)])
    response = share.browser.get(f"/authorize?{query}")
    assert_error_page(response)
    # Same value twice is still a repetition.
    query = urlencode([*params, (repeated, dict(params)[repeated])])
    assert_error_page(share.browser.get(f"/authorize?{query}"))
    # Pushed: the same.
    pushed = Share(stack)
    body = [(k, v) for k, v in pushed.authorize_params().items() if k != "client_id"]
    if repeated == "client_id":
        body.append(("client_id", pushed.client_id))
    with stack.partner_client() as client:
        response = client.post(
            "/par",
            content=urlencode([*body, (repeated, dict(params)[repeated])]),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert_par_refused(response, "invalid_request")


# -- the authorization response (30) ------------------------------------------------------------


def test_successful_authorization_response(stack: Stack, issuer: str) -> None:
    share = Share(stack)
    pushed = share.push()
    assert pushed.status_code == 201, pushed.text
    response = share.browser.get(
        "/authorize",
        params={"client_id": share.client_id, "request_uri": pushed.json()["request_uri"]},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/consent/")
    share.flow_id = response.headers["location"].rsplit("/", 1)[-1]
    assert "access-control-allow-origin" not in response.headers
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie

    share.collect_started()
    decision = share.decide(True)
    assert decision.status_code == 200
    assert decision.json()["redirect_to"] == f"{issuer}/consent/{share.flow_id}/continue"
    left = share.browser.get(decision.json()["redirect_to"])
    assert left.status_code == 303
    query = parse_qs(urlsplit(left.headers["location"]).query)
    assert query["iss"] == [issuer]
    assert query["state"] == [share.state]
    assert left.headers["location"].startswith(REDIRECT_URI + "?")


def test_error_responses_carry_the_same_headers(stack: Stack, exempt: RegisteredPartner) -> None:
    share = Share(stack, partner=exempt)
    for params in (
        share.authorize_params(prompt="none"),
        share.authorize_params(redirect_uri="https://evil.example/"),
        Share(stack).authorize_params(),  # PAR required: an error page
    ):
        response = share.browser.get(
            "/authorize", params=params, headers={"Origin": "https://evil.example"}
        )
        assert response.status_code in (303, 400)
        assert "access-control-allow-origin" not in response.headers
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"


def test_preflight_gets_no_cors_grant(stack: Stack) -> None:
    response = httpx.options(
        f"{stack.url}/authorize",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert "access-control-allow-origin" not in response.headers
    assert response.status_code >= 400


# -- PAR (31) ----------------------------------------------------------------------------------


def push(stack: Stack, share: Share, auth: Any = None, **overrides: str) -> httpx.Response:
    data = share.authorize_params(**overrides)
    del data["client_id"]
    partner = share.partner
    assert partner is not None
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        return client.post(
            "/par",
            data=data,
            auth=auth if auth is not None else (partner.client_id, partner.client_secret),
        )


def authorize_pushed(
    share: Share, request_uri: str, client_id: str | None = None
) -> httpx.Response:
    return share.authorize_pushed(request_uri, client_id)


def test_pushed_request_is_used_once(stack: Stack) -> None:
    share = Share(stack)
    pushed = push(stack, share)
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert 0 < body["expires_in"] < 600
    assert pushed.headers["cache-control"] == "no-store"

    first = authorize_pushed(share, body["request_uri"])
    assert first.status_code == 303 and share.flow_id
    # The pushed parameters are the ones in force: the flow asks for what was pushed.
    assert share.describe().json()["scopes"] == share.scope.split()
    assert_error_page(authorize_pushed(Share(stack), body["request_uri"]))


def test_pushed_request_with_another_client_id(stack: Stack) -> None:
    share = Share(stack)
    request_uri = push(stack, share).json()["request_uri"]
    other = Share(stack, partner=stack.other_partner)
    assert_error_page(authorize_pushed(other, request_uri))
    assert_error_page(authorize_pushed(other, request_uri, client_id="sl_nobody"))


@pytest.mark.parametrize(
    "request_uri",
    [
        "urn:ietf:params:oauth:request_uri:made-up",
        "https://evil.example/request.jwt",
        "",
        "urn:ietf:params:oauth:request_uri:" + "x" * 400,
    ],
)
def test_unknown_request_uri(stack: Stack, request_uri: str) -> None:
    assert_error_page(authorize_pushed(Share(stack), request_uri))


def test_par_requires_client_authentication(stack: Stack) -> None:
    share = Share(stack)
    partner = stack.partner
    for auth in ((partner.client_id, "wrong"), ("sl_nobody", partner.client_secret)):
        response = push(stack, share, auth=auth)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert "www-authenticate" in response.headers
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        response = client.post("/par", data={**share.authorize_params()})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" in response.headers


def test_par_validates_like_authorize(stack: Stack) -> None:
    share = Share(stack)
    for overrides in (
        {"code_challenge_method": "plain"},
        {"redirect_uri": "https://evil.example/cb"},
        {"scope": "medical"},
        {"request_uri": "urn:ietf:params:oauth:request_uri:x"},
    ):
        response = push(stack, share, **overrides)
        assert response.status_code == 400, (overrides, response.text)
        assert response.json()["error"] in ("invalid_request", "invalid_scope")
        assert "request_uri" not in response.json()


def test_pushed_request_expires(
    settings: Settings, key_layer: KeyLayer, sandbox_url: str, tmp_path: Path
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
            retention=Retention(pushed_request=lifetime),
        ) as short,
        server.raw_client() as raw,
    ):
        share = Share(short)
        pushed = push(short, share)
        assert pushed.status_code == 201
        assert pushed.json()["expires_in"] == 1
        keys = redis_keys(raw, "sl:par:*")
        assert len(keys) == 1
        assert 0 < next(iter(keys.values())) <= lifetime.total_seconds() * 1000
        deadline = time.monotonic() + 5
        while redis_keys(raw, "sl:par:*") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert_error_page(authorize_pushed(share, pushed.json()["request_uri"]))


# -- refusal (32) -----------------------------------------------------------------------------


def test_refusal_redirects_access_denied_and_erases_the_flow(stack: Stack, issuer: str) -> None:
    share = Share(stack)
    share.collect()
    with stack.raw_redis() as raw:
        held = flow_keys(raw, share.flow_id)
        assert record_key(FLOW, share.flow_id) in held
        assert record_key(COLLECTED, share.flow_id) in held

        decision = share.decide(False)

        assert decision.status_code == 200, decision.text
        redirect_to = decision.json()["redirect_to"]
        base, _, query = redirect_to.partition("?")
        assert base == share.redirect_uri
        params = parse_qs(query)
        assert params["error"] == ["access_denied"]
        assert params["state"] == [share.state]
        assert params["iss"] == [issuer]
        assert "code" not in params
        assert flow_keys(raw, share.flow_id) == {}
    refused = stack.audit_rows("consent_refused", flow_id=share.flow_id)
    assert len(refused) == 1
    assert refused[0].client_id == share.client_id
    assert refused[0].login_hash is not None and refused[0].login_hash.startswith("hmac-sha256:")
    # Nothing is left to act on.
    assert share.describe().status_code == 404
    assert share.decide(True).status_code == 404
    assert share.review().status_code == 404
