"""Fault injection: the broker fails closed (SECURITY-CHECKLIST D 39-42, 45, 47). Each test that
breaks Redis or the database gets its own; the data sources fail through the sandbox's modes.
Real redis-server (killed, paused, restarted, filled), SQLite, SoftHSM, HTTP."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from sharelock.flow import flow_ref
from sharelock.flow.records import COLLECTED, DELIVERING, FLOW, RELEASE, RESUME
from sharelock.keys import KeyLayer
from sharelock.oauth import digest
from tests.support.broker import (
    CountingSandbox,
    Share,
    Stack,
    StackFactory,
    counting_sandbox,
    record_key,
    sqlite_url,
    token_key,
)
from tests.support.redis_server import RedisServer
from tests.support.sandbox import source_mode

STORE_TIMEOUT_S = 2.0  # the broker's Redis socket timeout (sharelock.store.client)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[CountingSandbox]:
    with counting_sandbox() as running:
        yield running


@dataclass
class Own:
    """A broker with its own Redis and its own SQLite file."""

    redis: RedisServer
    stack: Stack
    database: Path


@pytest.fixture
def own(make_stack: StackFactory, sandbox: CountingSandbox, tmp_path: Path) -> Iterator[Own]:
    with (
        RedisServer(tmp_path / "redis") as server,
        make_stack(
            redis_url=server.url, sandbox_url=sandbox.url, database_url=sqlite_url(tmp_path)
        ) as stack,
    ):
        yield Own(server, stack, tmp_path / "sharelock.db")


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert "Traceback" not in response.text
    assert "redis://" not in response.text
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers


def approved_token(stack: Stack) -> tuple[Share, str]:
    flow = Share(stack)
    flow.collect()
    response = flow.exchange(flow.approve_and_get_code())
    assert response.status_code == 200, response.text
    return flow, response.json()["access_token"]


def until_redis_answers(stack: Stack, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{stack.url}/readyz", timeout=10).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the broker did not see Redis again")


# -- Redis down (39, 40) ------------------------------------------------------------------------


def test_redis_down_at_authorization(own: Own) -> None:
    own.redis.kill()
    share = Share(own.stack)
    response = share.start()
    assert_unavailable(response)
    assert response.headers["retry-after"]
    assert not share.flow_id
    assert not own.stack.audit_rows("flow_started", client_id=share.client_id)
    # Back up (empty, no persistence): nothing of the refused flow, and flows start again.
    own.redis.start()
    until_redis_answers(own.stack)
    with own.redis.raw_client() as raw:
        assert not list(raw.scan_iter(match="sl:flow:*"))
    assert share.start().status_code == 303
    assert len(own.stack.audit_rows("flow_started", client_id=share.client_id)) == 1


def test_redis_down_when_credentials_arrive(
    own: Own, key_layer: KeyLayer, sandbox: CountingSandbox
) -> None:
    share = Share(own.stack)
    assert share.start().status_code == 303
    envelope = share.seal({"login": "alice", "password": "alice-pass"})
    own.redis.kill()
    calls = key_layer.token.calls
    logins = sandbox.logins.total()
    response = share.browser.post(
        f"/api/flows/{share.flow_id}/credentials",
        json={"data_source": "sandbox-bank", "credentials": envelope},
    )
    assert_unavailable(response)
    assert key_layer.token.calls == calls
    assert sandbox.logins.total() == logins
    assert not own.stack.audit_rows("credentials_received", flow_id=share.flow_id)


def test_redis_lost_between_code_and_token(own: Own) -> None:
    share = Share(own.stack)
    share.collect()
    code = share.approve_and_get_code()
    own.redis.kill()
    assert_unavailable(share.exchange(code))
    own.redis.restart()  # persistence off: it comes back empty
    until_redis_answers(own.stack)
    response = share.exchange(code)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()
    assert not own.stack.audit_rows("data_delivered", flow_id=share.flow_id)
    with own.redis.raw_client() as raw:
        assert not list(raw.scan_iter(match="sl:token:*"))


# -- Redis stalled on the consume step (41) ---------------------------------------------------


def test_redis_paused_during_fetch(own: Own) -> None:
    share, token = approved_token(own.stack)
    own.redis.pause()
    try:
        started = time.monotonic()
        response = share.fetch(token)
        elapsed = time.monotonic() - started
    finally:
        own.redis.resume()
    assert_unavailable(response)
    assert elapsed < 3 * STORE_TIMEOUT_S
    assert not own.stack.audit_rows("data_delivered", flow_id=share.flow_id)

    until_redis_answers(own.stack)
    responses = [share.fetch(token) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 401, 401]
    assert responses[0].json()["data"]["bank_account"]["iban"] == "FR7699990000010001234567834"
    assert len(own.stack.audit_rows("data_delivered", flow_id=share.flow_id)) == 1


def test_redis_paused_during_code_exchange(own: Own) -> None:
    """The code's GETDEL sent to a stalled Redis: 503; whether Redis applies it when it wakes
    or not, the retry releases at most once."""
    share = Share(own.stack)
    share.collect()
    code = share.approve_and_get_code()
    own.redis.pause()
    try:
        started = time.monotonic()
        response = share.exchange(code)
        elapsed = time.monotonic() - started
    finally:
        own.redis.resume()
    assert_unavailable(response)
    assert elapsed < 3 * STORE_TIMEOUT_S
    until_redis_answers(own.stack)
    retries = [share.exchange(code) for _ in range(2)]
    tokens = [r.json()["access_token"] for r in retries if r.status_code == 200]
    assert len(tokens) <= 1, [r.text for r in retries]
    for retry in retries:
        if retry.status_code != 200:
            assert retry.json()["error"] == "invalid_grant"
    # A second retry after a successful one is a replay of the code, which revokes the token
    # that retry got (RFC 6749 §4.1.2): then nothing is released at all, which is as safe.
    delivered = [share.fetch(token).status_code for token in tokens for _ in range(2)]
    assert delivered in ([], [200, 401], [401, 401])
    released = delivered.count(200)
    assert len(own.stack.audit_rows("data_delivered", flow_id=share.flow_id)) == released


# -- Redis full (42) ----------------------------------------------------------------------------


@pytest.fixture
def small(make_stack: StackFactory, sandbox: CountingSandbox, tmp_path: Path) -> Iterator[Own]:
    with (
        RedisServer(tmp_path / "redis", maxmemory="4mb") as server,
        make_stack(
            redis_url=server.url, sandbox_url=sandbox.url, database_url=sqlite_url(tmp_path)
        ) as stack,
    ):
        yield Own(server, stack, tmp_path / "sharelock.db")


def fill(raw: redis.Redis) -> int:
    """Write junk until Redis refuses even a small value (maxmemory with noeviction): big
    values first, then ever smaller ones, since a refused big write frees its own buffer."""
    written = 0
    for size in (32 * 1024, 1024, 16):
        for _ in range(10_000):
            try:
                raw.set(f"junk:{written}", b"j" * size)
            except redis.exceptions.OutOfMemoryError:
                break
            written += 1
        else:
            raise AssertionError("redis never refused a write: is maxmemory set?")
    return written


def test_redis_full_refuses_new_flows_and_keeps_existing_ones(small: Own) -> None:
    existing = Share(small.stack)
    existing.collect()
    # Pushed while Redis has room (PAR is required): the flow itself meets the full Redis, as
    # the first write after `fill`. (A small pushed request may or may not fit in the last
    # bytes `fill` leaves.)
    newcomer = Share(small.stack)
    pushed = newcomer.push()
    assert pushed.status_code == 201, pushed.text
    with small.redis.raw_client() as raw:
        assert raw.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        kept = [k.decode() for k in raw.scan_iter(match="sl:*") if not k.startswith(b"sl:par:")]
        assert record_key(FLOW, existing.flow_id) in kept
        assert fill(raw) > 0

        assert_unavailable(newcomer.authorize_pushed(pushed.json()["request_uri"]))
        assert len(small.stack.audit_rows("flow_started", client_id=newcomer.client_id)) == 1
        for key in kept:
            assert raw.exists(key) == 1, key
        # The existing flow can still be read.
        assert existing.describe().json()["status"] == "collected"

        for key in raw.scan_iter(match="junk:*"):
            raw.delete(key)
    assert Share(small.stack).start().status_code == 303


# -- the audit store fails before release (45) ------------------------------------------------


def test_audit_store_down_before_release(own: Own) -> None:
    share, token = approved_token(own.stack)
    with sqlite3.connect(own.database) as db:
        db.execute("ALTER TABLE audit_events RENAME TO audit_events_away")
    try:
        response = share.fetch(token)
        assert_unavailable(response)
        # Handed over, not lost: the token and the release became the `delivering` record,
        # which the partner's retry takes up once the trail is back.
        with own.redis.raw_client() as raw:
            assert raw.exists(token_key(token)) == 0
            assert raw.exists(record_key(RELEASE, flow_ref(share.flow_id))) == 0
            assert raw.exists(record_key(DELIVERING, digest(token))) == 1
        assert_unavailable(share.fetch(token))
    finally:
        with sqlite3.connect(own.database) as db:
            db.execute("ALTER TABLE audit_events_away RENAME TO audit_events")
    responses = [share.fetch(token) for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 401]
    assert responses[0].json()["data"]["identity"]["family_name"] == "Martin"
    assert len(own.stack.audit_rows("data_delivered", flow_id=share.flow_id)) == 1
    with own.redis.raw_client() as raw:
        assert raw.exists(record_key(DELIVERING, digest(token))) == 0


def test_audit_store_slow_then_the_partner_retries(own: Own) -> None:
    """A write lock held elsewhere: the delivery waits for it; a retry meanwhile does not
    deliver a second time (46)."""
    share, token = approved_token(own.stack)
    blocker = sqlite3.connect(own.database, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(share.fetch, token)
            time.sleep(0.5)
            retry = pool.submit(share.fetch, token)
            time.sleep(0.5)
            assert not first.done() and not retry.done()
            blocker.execute("ROLLBACK")
            responses = [first.result(timeout=30), retry.result(timeout=30)]
    finally:
        blocker.close()
    assert sorted(r.status_code for r in responses) == [200, 401]
    assert len(own.stack.audit_rows("data_delivered", flow_id=share.flow_id)) == 1
    assert len(own.stack.audit_rows("delivery_conflict", flow_id=share.flow_id)) == 1


def test_redis_fails_after_the_row_and_the_data_still_leaves(own: Own) -> None:
    """Redis stalls between the committed `data_delivered` row and the erasure: the data
    handed over before the row still leaves, so the row is true; the token then refuses a
    second fetch, and the erasure applies once Redis answers (issue 12)."""
    share, token = approved_token(own.stack)
    blocker = sqlite3.connect(own.database, isolation_level=None)
    try:
        with own.redis.raw_client() as raw, ThreadPoolExecutor(max_workers=1) as pool:
            # Hold the audit trail's write lock, so that the fetch stops at its row after
            # handing the token and the release over (the last Redis call before the row).
            blocker.execute("BEGIN IMMEDIATE")
            first = pool.submit(share.fetch, token)
            deadline = time.monotonic() + 30
            while raw.exists(token_key(token)):
                assert time.monotonic() < deadline, "the fetch never reached its audit row"
                time.sleep(0.01)
            own.redis.pause()
            try:
                blocker.execute("ROLLBACK")  # the row commits; the erasure meets a stalled Redis
                response = first.result(timeout=30)
            finally:
                own.redis.resume()
    finally:
        blocker.close()
    assert response.status_code == 200, response.text
    assert response.json()["data"]["bank_account"]["iban"] == "FR7699990000010001234567834"
    assert len(own.stack.audit_rows("data_delivered", flow_id=share.flow_id)) == 1

    until_redis_answers(own.stack)
    with own.redis.raw_client() as raw:
        assert raw.exists(record_key(DELIVERING, digest(token))) == 1  # the erasure failed
    again = share.fetch(token)
    assert again.status_code == 401
    assert len(own.stack.audit_rows("data_delivered", flow_id=share.flow_id)) == 1
    assert len(own.stack.audit_rows("delivery_conflict", flow_id=share.flow_id)) == 1
    with own.redis.raw_client() as raw:
        assert raw.exists(record_key(DELIVERING, digest(token))) == 0  # erased by the refusal


# -- the data source fails (47) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(
    make_stack: StackFactory, redis_server: RedisServer, sandbox: CountingSandbox
) -> Iterator[Stack]:
    with make_stack(
        redis_url=redis_server.url, sandbox_url=sandbox.url, connector_timeout=0.5
    ) as running:
        yield running


def assert_failed_cleanly(
    stack: Stack, share: Share, response: httpx.Response, reason: str
) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failed"
    assert response.json()["reason"] == reason
    rows = stack.audit_rows("collection_failed", flow_id=share.flow_id)
    assert [r.outcome for r in rows] == [reason]
    with stack.raw_redis() as raw:
        assert raw.exists(record_key(COLLECTED, share.flow_id)) == 0
        assert raw.exists(record_key(RESUME, share.flow_id)) == 0
    assert share.describe().json()["status"] == "awaiting_credentials"
    assert share.review().status_code == 409


@pytest.mark.parametrize(
    ("mode", "reasons"),
    [
        ("down", ("source_unavailable",)),
        ("slow", ("source_timeout",)),
        ("garbage", ("source_unavailable",)),
    ],
)
def test_source_failure_modes(
    stack: Stack, sandbox: CountingSandbox, mode: str, reasons: tuple[str, ...]
) -> None:
    share = Share(stack)
    assert share.start().status_code == 303
    with source_mode(sandbox.url, "sandbox-bank", mode):
        started = time.monotonic()
        response = share.send_credentials("alice", "alice-pass")
        elapsed = time.monotonic() - started
    assert elapsed < 5
    assert response.json().get("reason") in reasons, response.text
    assert_failed_cleanly(stack, share, response, response.json()["reason"])
    # The source back up: the same person can go on in the same flow.
    share.collect_started()


def test_slow_user_times_out(stack: Stack) -> None:
    share = Share(stack)
    assert share.start().status_code == 303
    started = time.monotonic()
    response = share.send_credentials("slow", "slow-pass")
    assert time.monotonic() - started < 3
    assert_failed_cleanly(stack, share, response, "source_timeout")


def test_down_user_is_unavailable(stack: Stack) -> None:
    share = Share(stack)
    assert share.start().status_code == 303
    response = share.send_credentials("down", "down-pass")
    assert_failed_cleanly(stack, share, response, "source_unavailable")
