"""Every limit of `Settings.limits` (abuse issue, class 3), each with small values on a private
redis-server, through the real broker over HTTP: 429 with `Retry-After`, RFC 6749-style JSON on
the API and a readable page on the screens, nothing done for a refused request (no data-source
login, no HSM operation), the refusal counted in metrics and, where it stops a person or an
auditor, audited once per window. Nothing the limits keep in Redis names an address or login."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
import redis

from sharelock.auditors import AuditorRegistry
from sharelock.config import Limits, Settings
from sharelock.keys import KeyLayer
from sharelock.web.throttle import client_address, trusted_networks
from tests.support.broker import (
    CountingSandbox,
    Share,
    Stack,
    broker_stack,
    counting_sandbox,
    redis_keys,
    sqlite_url,
)
from tests.support.redis_server import RedisServer

SMALL = Limits(
    per_address="100000/minute",
    failed_auth_per_address="3/minute",
    par_per_partner="100000/minute",
    token_per_partner="100000/minute",
    wrong_passwords_per_flow="2/hour",
    wrong_passwords_per_login="3/hour",
    rights_per_address="2/hour",
    auditor_lookups="2/hour",
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[CountingSandbox]:
    with counting_sandbox() as running:
        yield running


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own: limits count across every stack on one server."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


def _stack(
    settings: Settings,
    key_layer: KeyLayer,
    redis_server: RedisServer,
    sandbox_url: str,
    tmp_path: Path,
    limits: Limits = SMALL,
    **overrides: object,
) -> AbstractContextManager[Stack]:
    return broker_stack(
        settings,
        key_layer,
        redis_url=redis_server.url,
        sandbox_url=sandbox_url,
        database_url=sqlite_url(tmp_path),
        limits=limits,
        **overrides,
    )


@pytest.fixture
def stack(
    settings: Settings,
    key_layer: KeyLayer,
    private_redis: RedisServer,
    sandbox: CountingSandbox,
    tmp_path: Path,
) -> Iterator[Stack]:
    with _stack(settings, key_layer, private_redis, sandbox.url, tmp_path) as running:
        yield running


def _assert_429(response: httpx.Response, error: str) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]


# -- wrong passwords ----------------------------------------------------------------------------


def test_a_flow_stops_trying_after_its_wrong_passwords(
    stack: Stack, sandbox: CountingSandbox, key_layer: KeyLayer
) -> None:
    share = Share(stack)
    assert share.start().status_code == 303
    for left in (1, 0):
        failed = share.send_credentials("alice", "wrong-pass")
        assert failed.json()["status"] == "failed"
        assert failed.json()["reason"] == "invalid_credentials"
        assert failed.json()["attempts_left"] == left
    logins, hsm_calls = sandbox.logins.total(), key_layer.token.calls
    for _ in range(3):  # the right password too: the flow has spent its attempts
        _assert_429(share.send_credentials("alice", "alice-pass"), "too_many_attempts")
    assert stack.broker.operator_url is not None
    metrics = httpx.get(stack.broker.operator_url + "/metrics").text
    # This stack's own app counts only its refusals: the three above.
    assert 'sharelock_rate_limited_total{limit="wrong_passwords_per_flow"} 3.0' in metrics
    assert sandbox.logins.total() == logins, "a refused attempt reached the data source"
    assert key_layer.token.calls == hsm_calls, "a refused envelope was opened"
    described = share.describe().json()
    assert described["attempts_left"] == 0
    assert described["status"] == "awaiting_credentials"
    rows = stack.audit_rows("rate_limited", flow_id=share.flow_id)
    assert len(rows) == 1, "one audit row per window, not one per refused request"
    assert rows[0].detail_code == "wrong_passwords_per_flow"
    assert rows[0].actor == "person"


def test_one_login_is_not_tried_again_across_flows(stack: Stack, sandbox: CountingSandbox) -> None:
    first, second = Share(stack), Share(stack)
    for share in (first, second):
        assert share.start().status_code == 303
    # Three wrong passwords for alice, spread over two shares (each within its own budget).
    for share, count in ((first, 2), (second, 1)):
        for _ in range(count):
            assert share.send_credentials("alice", "nope").json()["status"] == "failed"
    third = Share(stack)
    assert third.start().status_code == 303
    logins = sandbox.logins.total()
    _assert_429(third.send_credentials("alice", "alice-pass"), "too_many_attempts")
    assert sandbox.logins.total() == logins
    rows = stack.audit_rows("rate_limited", flow_id=third.flow_id)
    assert [r.detail_code for r in rows] == ["wrong_passwords_per_login"]
    assert rows[0].login_hash and rows[0].login_hash.startswith("hmac-sha256:")
    assert rows[0].data_source == "sandbox-bank"
    # Another login is not held back by alice's, even in the same share.
    other = third.send_credentials("locked", "locked-pass")
    assert other.json()["reason"] == "account_locked"


def test_signing_in_for_ones_rights_shares_the_login_budget(
    settings: Settings,
    key_layer: KeyLayer,
    private_redis: RedisServer,
    sandbox: CountingSandbox,
    tmp_path: Path,
) -> None:
    limits = SMALL.model_copy(update={"rights_per_address": "100/hour"})
    with _stack(settings, key_layer, private_redis, sandbox.url, tmp_path, limits) as stack:
        share = Share(stack)
        assert share.start().status_code == 303
        for _ in range(2):
            assert share.send_credentials("alice", "nope").json()["status"] == "failed"

        def prove(password: str) -> httpx.Response:
            sealed = share.seal({"login": "alice", "password": password})
            return share.browser.post(
                "/api/rights/proofs", json={"data_source": "sandbox-bank", "credentials": sealed}
            )

        assert prove("still-wrong").json()["status"] == "failed"
        logins = sandbox.logins.total()
        _assert_429(prove("alice-pass"), "too_many_attempts")
        assert sandbox.logins.total() == logins
        rows = [r for r in stack.audit_rows("rate_limited") if r.flow_ref is None]
        assert [(r.actor, r.detail_code, r.data_source) for r in rows] == [
            ("person", "wrong_passwords_per_login", "sandbox-bank")
        ]


def test_wrong_one_time_codes_count_too(stack: Stack, sandbox: CountingSandbox) -> None:
    share = Share(stack)
    assert share.start().status_code == 303
    assert share.send_credentials("bob", "bob-pass").json()["status"] == "otp_required"
    for _ in range(2):
        assert share.send_otp("000000").json()["reason"] == "invalid_otp"
    logins = sandbox.logins.total()
    _assert_429(share.send_otp("123456"), "too_many_attempts")
    assert sandbox.logins.total() == logins


# -- addresses --------------------------------------------------------------------------------


def test_failed_authentications_spend_the_address_budget_then_nothing_is_verified(
    stack: Stack,
) -> None:
    share = Share(stack)
    wrong = httpx.Client(base_url=stack.url, auth=(stack.partner.client_id, "x" * 43))
    with wrong:
        for _ in range(3):
            assert (
                wrong.post("/token", data={"grant_type": "authorization_code"}).status_code == 401
            )
        _assert_429(wrong.post("/token", data={"grant_type": "authorization_code"}), "rate_limited")
    # Spent for this address: even the right secret is refused before it is looked at.
    with stack.partner_client() as right:
        _assert_429(right.post("/par", data={"scope": share.scope}), "rate_limited")
    # A bearer token that does not exist counts the same way at /v1/share.
    with httpx.Client(base_url=stack.url) as client:
        _assert_429(
            client.get("/v1/share", headers={"Authorization": "Bearer " + "y" * 43}),
            "rate_limited",
        )


def test_pushed_requests_and_token_calls_are_bounded_per_partner(
    settings: Settings,
    key_layer: KeyLayer,
    private_redis: RedisServer,
    sandbox: CountingSandbox,
    tmp_path: Path,
) -> None:
    limits = SMALL.model_copy(
        update={"par_per_partner": "2/minute", "token_per_partner": "1/minute"}
    )
    with _stack(settings, key_layer, private_redis, sandbox.url, tmp_path, limits) as stack:
        share = Share(stack)
        pushed = share.authorize_params()
        pushed.pop("client_id")
        with stack.partner_client() as partner:
            for _ in range(2):
                assert partner.post("/par", data=pushed).status_code == 201
            _assert_429(partner.post("/par", data=pushed), "rate_limited")
            # Another partner has its own budget.
            with stack.partner_client(stack.other_partner) as other:
                other_pushed = Share(stack, partner=stack.other_partner).authorize_params()
                other_pushed.pop("client_id")
                assert other.post("/par", data=other_pushed).status_code == 201
            token = {"grant_type": "authorization_code", "code": "x", "redirect_uri": "y"}
            token["code_verifier"] = "v" * 43
            assert partner.post("/token", data=token).status_code == 400  # invalid_grant
            _assert_429(partner.post("/token", data=token), "rate_limited")


def test_the_person_facing_endpoints_are_bounded_per_address(
    settings: Settings,
    key_layer: KeyLayer,
    private_redis: RedisServer,
    sandbox: CountingSandbox,
    tmp_path: Path,
) -> None:
    limits = SMALL.model_copy(update={"per_address": "4/minute"})
    with (
        _stack(settings, key_layer, private_redis, sandbox.url, tmp_path, limits) as stack,
        httpx.Client(base_url=stack.url, timeout=30) as browser,
    ):
        for _ in range(4):
            assert browser.get("/consent/" + "A" * 32).status_code == 404
        page = browser.get("/consent/" + "A" * 32)
        assert page.status_code == 429
        assert page.headers["content-type"].startswith("text/html")
        assert int(page.headers["retry-after"]) >= 1
        assert "Too many requests" in page.text
        _assert_429(browser.get("/api/flows/" + "A" * 32), "rate_limited")
        # Discovery and health are not person-facing: never refused by this limit.
        assert browser.get("/.well-known/jwks.json").status_code == 200
        assert browser.get("/healthz").status_code == 200


def test_behind_a_trusted_proxy_each_forwarded_client_counts_alone(
    settings: Settings,
    key_layer: KeyLayer,
    private_redis: RedisServer,
    sandbox: CountingSandbox,
    tmp_path: Path,
) -> None:
    limits = SMALL.model_copy(update={"per_address": "2/minute"})
    with (
        _stack(
            settings,
            key_layer,
            private_redis,
            sandbox.url,
            tmp_path,
            limits,
            trusted_proxies=("127.0.0.1/32",),
        ) as stack,
        httpx.Client(base_url=stack.url, timeout=30) as proxy,
    ):
        for client in ("198.51.100.7", "198.51.100.8"):
            # What a client writes itself (left of the proxy's entry) proves nothing.
            forwarded = {"X-Forwarded-For": f"203.0.113.99, {client}"}
            for _ in range(2):
                response = proxy.get("/api/flows/" + "A" * 32, headers=forwarded)
                assert response.status_code == 404
            _assert_429(proxy.get("/api/flows/" + "A" * 32, headers=forwarded), "rate_limited")
    raw = redis.Redis.from_url(private_redis.url)
    with raw:
        for key in redis_keys(raw, "*"):
            for clear in ("198.51.100", "203.0.113", "127.0.0.1"):
                assert clear not in key
            if raw.type(key) == b"list":
                for value in raw.lrange(key, 0, -1):
                    assert b"198.51.100" not in value


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        ("192.0.2.1", None, (), "192.0.2.1"),
        ("192.0.2.1", "198.51.100.7", (), "192.0.2.1"),  # an untrusted peer's header: ignored
        ("10.0.0.2", "198.51.100.7", ("10.0.0.0/8",), "198.51.100.7"),
        ("10.0.0.2", "1.1.1.1, 198.51.100.7, 10.0.0.3", ("10.0.0.0/8",), "198.51.100.7"),
        ("10.0.0.2", "garbage, 198.51.100.7", ("10.0.0.0/8",), "198.51.100.7"),
        ("10.0.0.2", "198.51.100.7, garbage", ("10.0.0.0/8",), "10.0.0.2"),
        ("2001:db8::1", None, (), "2001:db8::/64"),
        ("2001:db8::1:2:3:4", None, (), "2001:db8::/64"),
        (None, None, (), "unknown"),
    ],
)
def test_client_address(
    peer: str | None, forwarded: str | None, trusted: tuple[str, ...], expected: str
) -> None:
    assert client_address(peer, forwarded, trusted_networks(trusted)) == expected


# -- rights and auditors ------------------------------------------------------------------------


def test_rights_requests_are_bounded_per_address_and_the_refusal_audited(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as person:
        for _ in range(2):
            answer = person.post("/api/rights/traces", json={"receipt": "not-a-receipt"})
            assert answer.status_code == 400
        for _ in range(2):
            _assert_429(
                person.post("/api/rights/traces", json={"receipt": "not-a-receipt"}),
                "rate_limited",
            )
    rows = stack.audit_rows("rate_limited")
    assert [(r.actor, r.detail_code) for r in rows] == [("person", "rights_per_address")]


def test_auditor_look_ups_are_bounded_per_auditor_and_the_refusal_audited(stack: Stack) -> None:
    assert stack.engine is not None
    auditor, token = AuditorRegistry(stack.engine).add("Busy auditor")
    other, other_token = AuditorRegistry(stack.engine).add("Other auditor")
    body = {"data_source": "sandbox-bank", "login": "alice"}
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.post("/audit/hash", json=body, headers=headers).status_code == 200
        assert client.get("/audit/traces", headers=headers).status_code == 200
        for _ in range(2):
            _assert_429(client.post("/audit/hash", json=body, headers=headers), "rate_limited")
        # Per auditor: another one still can.
        other_headers = {"Authorization": f"Bearer {other_token}"}
        assert client.post("/audit/hash", json=body, headers=other_headers).status_code == 200
    refused = stack.audit_rows("rate_limited")
    assert [(r.actor, r.detail_code) for r in refused] == [
        (f"auditor:{auditor.auditor_id}", "auditor_lookups")
    ]
    assert other.auditor_id != auditor.auditor_id


# -- failing closed -----------------------------------------------------------------------------


def test_a_limit_that_cannot_be_read_refuses_with_503(
    settings: Settings,
    key_layer: KeyLayer,
    sandbox: CountingSandbox,
    tmp_path: Path,
) -> None:
    with (
        RedisServer(tmp_path / "redis") as server,
        _stack(settings, key_layer, server, sandbox.url, tmp_path) as stack,
        httpx.Client(base_url=stack.url, timeout=30) as browser,
    ):
        server.kill()
        answer = browser.get("/api/flows/" + "A" * 32)
    assert answer.status_code == 503
    assert answer.json()["error"] == "temporarily_unavailable"
