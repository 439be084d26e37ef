"""Lifetimes that Redis really enforces (SPEC "Retention"; SECURITY-CHECKLIST 25, 32, 35-36):
with short configured caps, every key of a flow carries a TTL within its cap, activity never
extends it, and flow, credentials, data, code, token and kept identity disappear on time. The
abandoned flow is accounted for in the audit trail."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest
import redis

from sharelock.config import Retention
from sharelock.flow import flow_ref
from sharelock.flow.records import COLLECTED, FLOW, IDENTITY, RELEASE
from tests.support.broker import (
    Share,
    Stack,
    StackFactory,
    code_key,
    flow_keys,
    record_key,
    redis_keys,
    token_key,
)
from tests.support.redis_server import RedisServer

SESSION_MS = 3000
CODE_MS = 1000
TOKEN_MS = 2000
IDENTITY_MS = 2000
RETENTION = Retention(
    session=timedelta(milliseconds=SESSION_MS),
    authorization_code=timedelta(milliseconds=CODE_MS),
    access_token=timedelta(milliseconds=TOKEN_MS),
    pushed_request=timedelta(seconds=1),
    identity_data=timedelta(milliseconds=IDENTITY_MS),
)


@pytest.fixture(scope="module")
def redis_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory, redis_own: RedisServer, sandbox_url: str) -> Iterator[Stack]:
    with make_stack(
        redis_url=redis_own.url,
        sandbox_url=sandbox_url,
        retention=RETENTION,
        expiry_sweep_seconds=0.2,
    ) as running:
        yield running


@pytest.fixture
def raw(redis_own: RedisServer) -> Iterator[redis.Redis]:
    with redis_own.raw_client() as client:
        yield client


def wait_until(condition: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("not within the time limit")
        time.sleep(0.05)


def assert_within(keys: dict[str, int], cap_ms: int) -> None:
    assert keys
    for key, ttl in keys.items():
        assert 0 < ttl <= cap_ms, (key, ttl)


def test_every_key_of_a_flow_expires_within_its_cap(stack: Stack, raw: redis.Redis) -> None:
    share = Share(stack)
    share.collect()
    assert_within(flow_keys(raw, share.flow_id), SESSION_MS)
    assert_within(redis_keys(raw, "sl:envelope-seen:*"), SESSION_MS)
    expires = raw.pexpiretime(record_key(FLOW, share.flow_id))

    code = share.approve_and_get_code()
    assert_within({code_key(code): int(raw.pttl(code_key(code)))}, CODE_MS)
    assert_within(flow_keys(raw, share.flow_id), SESSION_MS)
    # Activity never moves the session's end.
    assert raw.pexpiretime(record_key(FLOW, share.flow_id)) == expires

    exchanged = share.exchange(code)
    assert exchanged.status_code == 200, exchanged.text
    token = exchanged.json()["access_token"]
    assert exchanged.json()["expires_in"] <= TOKEN_MS / 1000
    assert_within({token_key(token): int(raw.pttl(token_key(token)))}, TOKEN_MS)
    assert raw.pexpiretime(token_key(token)) <= expires
    assert raw.pexpiretime(record_key(RELEASE, flow_ref(share.flow_id))) <= expires
    for key, ttl in redis_keys(raw, "sl:code-used:*").items():
        assert 0 < ttl <= TOKEN_MS, key

    wait_until(
        lambda: (
            not flow_keys(raw, share.flow_id) and not raw.exists(token_key(token), code_key(code))
        )
    )
    response = share.fetch(token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert share.describe().status_code == 404
    assert not stack.audit_rows("data_delivered", flow_id=share.flow_id)


def test_an_abandoned_flow_is_erased_and_recorded(stack: Stack, raw: redis.Redis) -> None:
    share = Share(stack)
    share.collect()
    held = flow_keys(raw, share.flow_id)
    assert {record_key(FLOW, share.flow_id), record_key(COLLECTED, share.flow_id)} <= set(held)
    assert_within(held, SESSION_MS)

    wait_until(lambda: not flow_keys(raw, share.flow_id))
    for response in (share.describe(), share.review(), share.decide(True)):
        assert response.status_code == 404
        assert response.json()["error"] == "session_expired"
    again = share.send_credentials("alice", "alice-pass")
    assert again.status_code == 404
    # The trail says how the flow ended.
    wait_until(lambda: bool(stack.audit_rows("data_expired", flow_id=share.flow_id)))
    assert len(stack.audit_rows("data_expired", flow_id=share.flow_id)) == 1


def test_a_session_ends_at_its_cap_whatever_the_activity(stack: Stack, raw: redis.Redis) -> None:
    share = Share(stack)
    assert share.start().status_code == 303
    started = time.monotonic()
    expires = raw.pexpiretime(record_key(FLOW, share.flow_id))
    assert expires > 0
    # The cookie as sent by a browser that keeps it (httpx's jar rounds max-age down).
    name = f"sl_flow_{share.flow_id}"
    cookie = {"Cookie": f"{name}={share.browser.cookies[name]}"}
    with httpx.Client(base_url=stack.url, timeout=30) as browser:
        while (
            status := browser.get(f"/api/flows/{share.flow_id}", headers=cookie)
        ).status_code == 200:
            assert raw.pexpiretime(record_key(FLOW, share.flow_id)) in (expires, -2)
            assert time.monotonic() - started < SESSION_MS / 1000 + 1
            time.sleep(0.2)
    assert status.status_code == 404
    assert status.json()["error"] == "session_expired"
    assert time.monotonic() - started >= SESSION_MS / 1000 - 0.5
    assert raw.exists(record_key(FLOW, share.flow_id)) == 0


def test_kept_identity_expires_at_its_cap(stack: Stack, raw: redis.Redis) -> None:
    share = Share(stack)
    shared = share.complete()
    assert shared["data"]["identity"]["family_name"] == "Martin"
    key = record_key(IDENTITY, flow_ref(share.flow_id))
    assert 0 < int(raw.pttl(key)) <= IDENTITY_MS
    wait_until(lambda: not raw.exists(key))


def test_redis_expiry_cap_is_the_configuration(stack: Stack, raw: redis.Redis) -> None:
    """No key any flow wrote lives longer than the longest configured limit."""
    Share(stack).collect()
    longest = max(SESSION_MS, CODE_MS, TOKEN_MS, IDENTITY_MS, 1000)
    for key, ttl in redis_keys(raw).items():
        if key.startswith("sl:index:"):
            continue  # the expiry index: flow references and deadlines, nothing personal
        assert 0 < ttl <= longest, (key, ttl)


def test_settings_reach_the_served_broker(stack: Stack) -> None:
    assert stack.settings.retention == RETENTION
