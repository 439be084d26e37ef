"""Webhooks end to end on real parts: the audit trail in SQL (the outbox), the queue in a real
redis-server, SETs signed by SoftHSM, pushed over real HTTP to the sandbox's receiver (or to a
server of the test's own), verified with joserfc against the broker's published JWKS.

Time and chance are injected (a `FrozenClock`, a seeded `random.Random`): the retry timeline
is exact, and no test waits for a back-off to pass. Each test drives the relay and the sender
pass by pass; the stack's own background task is off (`webhook_enabled=False`), except in
the end-to-end test, which runs it as `serve` does."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwe, jws
from joserfc.jwk import ECKey, KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sharelock.audit import AuditEvent, AuditTrail, EventType
from sharelock.clock import FrozenClock
from sharelock.flow import AsyncPartners, flow_ref
from sharelock.flow.packaging import encrypt_to
from sharelock.keys import KeyLayer
from sharelock.oauth import digest
from sharelock.registry import PartnerRegistry
from sharelock.store import connect
from sharelock.webhooks import (
    EVENT_URI_PREFIX,
    KEYS,
    MEDIA_TYPE,
    SET_TYPE,
    SHARE_DELIVERED,
    SHARE_EXPIRED,
    SHARE_REFUSED,
    Attempt,
    Webhooks,
)
from sharelock.webhooks.backoff import MIN_DELAY_S
from sharelock.webhooks.queue import CURSOR, GROUP, STREAM
from tests.support.broker import RegisteredPartner, Share, Stack, StackFactory
from tests.support.redis_server import RedisServer
from tests.support.server import serve_app
from tests.support.whole_share import FAMILY_NAME, GIVEN_NAME, IBAN

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SEED = 2024
HORIZON_S = 24 * 3600.0
SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]


# -- the parts ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The queue's Redis: this module's own (the cursor belongs to one audit trail)."""
    with RedisServer(tmp_path_factory.mktemp("webhook-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def wh_stack(make_stack: StackFactory, own_redis: RedisServer, sandbox_url: str) -> Iterator[Stack]:
    with make_stack(
        redis_url=own_redis.url, sandbox_url=sandbox_url, webhook_enabled=False
    ) as stack:
        yield stack


@pytest.fixture(autouse=True)
def empty_queue(own_redis: RedisServer) -> None:
    """Each test starts with no queue: its relay's first pass starts at the trail's head."""
    with own_redis.raw_client() as raw:
        raw.delete(*KEYS)


@dataclass
class Receiver:
    """The sandbox's webhook receiver, as a partner's endpoint (`sandbox/webhooks.py`)."""

    base: str
    name: str

    @property
    def url(self) -> str:
        return f"{self.base}/webhooks/{self.name}"

    def mode(self, mode: str) -> None:
        httpx.post(f"{self.url}/{mode}", timeout=5).raise_for_status()

    def state(self) -> dict[str, Any]:
        answer = httpx.get(self.url, timeout=5)
        if answer.status_code == 404:
            return {"received": [], "hanging": 0}
        answer.raise_for_status()
        state: dict[str, Any] = answer.json()
        return state

    def received(self) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = self.state()["received"]
        return received


@pytest.fixture
def receiver(sandbox_url: str, request: pytest.FixtureRequest) -> Receiver:
    name = request.node.name.split("[")[0].replace("_", "-")[:40].strip("-")
    httpx.delete(f"{sandbox_url}/webhooks/{name}", timeout=5)
    return Receiver(sandbox_url, name)


HooksFactory = Callable[..., Webhooks]


@pytest.fixture
async def hooks_for(
    wh_stack: Stack, own_redis: RedisServer, key_layer: KeyLayer
) -> AsyncIterator[HooksFactory]:
    """Builds the webhooks of one broker worker (its own Redis client, its own consumer), on
    the stack's database and the test's clock and random source."""
    made: list[Webhooks] = []

    def build(clock: FrozenClock, seed: int = SEED, **options: Any) -> Webhooks:
        assert wh_stack.engine is not None
        hooks = Webhooks.assemble(
            wh_stack.settings,
            connect(own_redis.url),
            wh_stack.engine,
            key_layer,
            AsyncPartners(PartnerRegistry(wh_stack.engine)),
            clock,
            rng=random.Random(seed),
            **options,
        )
        made.append(hooks)
        return hooks

    yield build
    for hooks in made:
        await hooks.aclose()
        await hooks.queue.client.aclose()


def record(stack: Stack, event: EventType, client_id: str, **fields: str) -> int:
    """One audit row, as the flow writes it (the outbox's input)."""
    assert stack.engine is not None
    reference = fields.pop("flow_ref", hashlib.sha256(os.urandom(16)).hexdigest()[:32])
    if event is EventType.DATA_DELIVERED:
        fields.setdefault("delivery_key", hashlib.sha256(os.urandom(16)).hexdigest())
    return AuditTrail(stack.engine).record(
        AuditEvent(event=event, client_id=client_id, flow_ref=reference, **fields)
    )


def with_webhook(stack: Stack, name: str, url: str, **extra: Any) -> RegisteredPartner:
    return stack.add_partner(name, webhook_url=url, **extra)


def jwks_of(stack: Stack) -> KeySet:
    return KeySet.import_key_set(httpx.get(f"{stack.url}/.well-known/jwks.json", timeout=5).json())


def verified(token: str, keys: KeySet) -> dict[str, Any]:
    """The SET's claims, once its ES256 signature verifies against the broker's JWKS."""
    found = jws.deserialize_compact(token, keys, algorithms=["ES256"])
    assert found.protected["typ"] == SET_TYPE
    assert found.protected["alg"] == "ES256"
    claims: dict[str, Any] = json.loads(found.payload)
    return claims


# -- retries, with the timeline ------------------------------------------------------------------


async def test_retries_with_backoff_until_the_receiver_is_back(
    wh_stack: Stack, receiver: Receiver, hooks_for: HooksFactory
) -> None:
    partner = with_webhook(wh_stack, "Retry Shop", receiver.url)
    clock = FrozenClock(T0)
    hooks = hooks_for(clock)
    attempts: list[Attempt] = []
    hooks.sender.on_attempt.append(attempts.append)
    assert await hooks.relay.run_once() == 0  # the cursor starts at the trail's head
    row = record(wh_stack, EventType.DATA_DELIVERED, partner.client_id)
    receiver.mode("down")
    assert await hooks.relay.run_once() == 1

    for _ in range(5):
        assert await hooks.sender.run_once() == 1
        waiting = (await hooks.queue.listing()).waiting
        assert [(event.id, due) for event, due in waiting] == [(row, attempts[-1].next_at)]
        assert await hooks.sender.run_once() == 0  # not due yet: nothing is pushed
        assert attempts[-1].next_at is not None
        clock.set(attempts[-1].next_at)
    receiver.mode("up")
    assert await hooks.sender.run_once() == 1

    # The timeline is exactly full jitter under a doubling ceiling, from the seeded source.
    draws, expected, at = random.Random(SEED), [T0], T0
    for failures in range(1, 6):
        at += max(MIN_DELAY_S, draws.uniform(0.0, min(3600.0, 10.0 * 2 ** (failures - 1))))
        expected.append(at)
    assert [a.at for a in attempts] == expected
    assert [a.outcome for a in attempts] == ["http_503"] * 5 + ["delivered"]
    assert [a.attempt for a in attempts] == [1, 2, 3, 4, 5, 6]
    assert len({a.jti for a in attempts}) == 1

    arrived = receiver.received()
    assert len(arrived) == 1 and arrived[0]["content_type"] == MEDIA_TYPE
    claims = verified(arrived[0]["token"], jwks_of(wh_stack))
    assert claims["jti"] == attempts[0].jti and claims["aud"] == partner.client_id
    assert claims["iat"] == int(expected[-1])  # signed again at the attempt that succeeded
    assert list(claims["events"]) == [EVENT_URI_PREFIX + SHARE_DELIVERED]
    listing = await hooks.queue.listing()
    assert (listing.queued, listing.waiting, listing.dead) == ([], [], [])

    print("\nwebhook retry timeline (receiver down for 5 attempts, then up):")
    print(" attempt  at (s after the event)  outcome     next attempt (s after the event)")
    for a in attempts:
        later = "-" if a.next_at is None else f"{a.next_at - T0:10.1f}"
        print(f" {a.attempt:7d}  {a.at - T0:22.1f}  {a.outcome:10s}  {later}")


async def test_a_refusal_with_err_is_a_dead_letter_at_once(
    wh_stack: Stack, receiver: Receiver, hooks_for: HooksFactory
) -> None:
    partner = with_webhook(wh_stack, "Refusing Shop", receiver.url)
    hooks = hooks_for(FrozenClock(T0))
    await hooks.relay.run_once()
    row = record(wh_stack, EventType.CONSENT_REFUSED, partner.client_id, outcome="refused")
    receiver.mode("reject")
    await hooks.relay.run_once()
    assert await hooks.sender.run_once() == 1
    listing = await hooks.queue.listing()
    assert listing.waiting == [] and [e.id for e in listing.dead] == [row]
    assert (listing.dead[0].attempts, listing.dead[0].last_error) == (1, "rejected_invalid_key")
    assert listing.dead[0].type == SHARE_REFUSED


async def test_dead_letter_after_the_horizon_then_replayed_by_the_operator(
    wh_stack: Stack,
    own_redis: RedisServer,
    receiver: Receiver,
    hooks_for: HooksFactory,
    tmp_path: Path,
) -> None:
    partner = with_webhook(wh_stack, "Gone Shop", receiver.url)
    clock = FrozenClock(T0)
    hooks = hooks_for(clock)
    attempts: list[Attempt] = []
    hooks.sender.on_attempt.append(attempts.append)
    await hooks.relay.run_once()
    row = record(wh_stack, EventType.DATA_EXPIRED, partner.client_id, outcome="expired")
    receiver.mode("down")
    await hooks.relay.run_once()
    while not attempts or attempts[-1].next_at is not None:
        assert await hooks.sender.run_once() == 1
        if attempts[-1].next_at is not None:
            clock.set(attempts[-1].next_at)
        assert len(attempts) < 200
    # Retried for exactly the horizon, the last attempt at the horizon itself.
    assert attempts[-1].at == T0 + HORIZON_S
    assert all(b.at - a.at <= 3600.0 for a, b in itertools.pairwise(attempts))
    assert receiver.received() == []

    run = operator(own_redis, tmp_path)
    listed = run("webhooks", "list", "--json")
    dead = [entry for entry in listed if entry["state"] == "dead"]
    assert [(e["id"], e["type"], e["client_id"]) for e in dead] == [
        (row, SHARE_EXPIRED, partner.client_id)
    ]
    assert dead[0]["attempts"] == len(attempts) and dead[0]["last_error"] == "http_503"
    assert run("webhooks", "replay", str(row), "999999999") == {
        "replayed": [row],
        "not_dead_letters": [999999999],
    }
    assert run("webhooks", "list", "--json")[0]["state"] == "queued"

    receiver.mode("up")
    clock.advance(5.0)
    assert await hooks.sender.run_once() == 1
    arrived = receiver.received()
    assert len(arrived) == 1 and arrived[0]["jti"] == attempts[0].jti
    assert run("webhooks", "list", "--json") == []


def operator(redis: RedisServer, tmp_path: Path) -> Callable[..., Any]:
    """`sharelock …` as the operator runs it, on the broker's Redis; its JSON output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env |= {"SHARELOCK_STATE_DIR": str(tmp_path / "state"), "SHARELOCK_REDIS_URL": redis.url}

    def run(*args: str) -> Any:
        done = subprocess.run(
            [str(SHARELOCK), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)

    return run


async def test_an_event_whose_partner_lost_its_webhook_is_a_dead_letter(
    wh_stack: Stack, receiver: Receiver, hooks_for: HooksFactory
) -> None:
    partner = with_webhook(wh_stack, "Fickle Shop", receiver.url)
    hooks = hooks_for(FrozenClock(T0))
    await hooks.relay.run_once()
    row = record(wh_stack, EventType.DATA_DELIVERED, partner.client_id)
    assert await hooks.relay.run_once() == 1
    wh_stack.registry.update(partner.client_id, webhook_url="")
    assert await hooks.sender.run_once() == 0
    (dead,) = (await hooks.queue.listing()).dead
    assert (dead.id, dead.last_error) == (row, "no_webhook")
    assert receiver.received() == []
    # And rows after the removal are not queued at all.
    record(wh_stack, EventType.DATA_DELIVERED, partner.client_id)
    assert await hooks.relay.run_once() == 0


async def test_a_cursor_past_the_trails_end_moves_back_to_it(
    wh_stack: Stack, own_redis: RedisServer, receiver: Receiver, hooks_for: HooksFactory
) -> None:
    """A trail replaced under the queue (a restored database): relaying goes on from its end."""
    partner = with_webhook(wh_stack, "Restored Shop", receiver.url)
    hooks = hooks_for(FrozenClock(T0))
    with own_redis.raw_client() as raw:
        raw.set(CURSOR, "1000000000")
    assert await hooks.relay.run_once() == 0
    head = await hooks.queue.cursor()
    assert head is not None and head < 1_000_000_000
    row = record(wh_stack, EventType.DATA_EXPIRED, partner.client_id, outcome="expired")
    assert await hooks.relay.run_once() == 1
    assert [e.id for e in (await hooks.queue.listing()).queued] == [row]


# -- exactly once into the stream, the same jti on every copy -----------------------------------


async def test_two_relays_racing_queue_each_row_once(
    wh_stack: Stack, own_redis: RedisServer, hooks_for: HooksFactory
) -> None:
    partner = with_webhook(wh_stack, "Raced Shop", "https://raced.example/hook")
    first, second = hooks_for(FrozenClock(T0)), hooks_for(FrozenClock(T0))
    await first.relay.run_once()
    rows = []
    for burst in range(6):
        rows += [
            record(wh_stack, EventType.DATA_EXPIRED, partner.client_id, outcome="expired")
            for _ in range(5)
        ]
        done = await asyncio.gather(first.relay.run_once(), second.relay.run_once())
        assert sum(done) in (0, 5), (burst, done)
        while sum(done):
            done = await asyncio.gather(first.relay.run_once(), second.relay.run_once())
    # And the race decided deterministically: both read the cursor, the second hand-over loses.
    cursor = await first.queue.cursor()
    assert cursor is not None
    late = record(wh_stack, EventType.DATA_EXPIRED, partner.client_id, outcome="expired")
    assert await first.queue.hand_over(cursor, late, []) is True
    assert await second.queue.hand_over(cursor, late, []) is False

    with own_redis.raw_client() as raw:
        entries = raw.xrange(STREAM)
    ids = [json.loads(fields[b"event"])["id"] for _, fields in entries]
    assert sorted(ids) == rows  # every row once, none twice


async def test_a_duplicate_relay_sends_the_same_jti_and_the_receiver_drops_it(
    wh_stack: Stack,
    receiver: Receiver,
    hooks_for: HooksFactory,
    key_layer: KeyLayer,
    tmp_path: Path,
) -> None:
    """A second queue over the same trail (a restored Redis, a second deployment by mistake)
    sends the rows again: with the same jti, so the receiver knows them."""
    partner = with_webhook(wh_stack, "Twice Shop", receiver.url)
    hooks = hooks_for(FrozenClock(T0))
    await hooks.relay.run_once()
    cursor = await hooks.queue.cursor()
    row = record(wh_stack, EventType.DATA_DELIVERED, partner.client_id)
    await hooks.relay.run_once()
    assert await hooks.sender.run_once() == 1
    with RedisServer(tmp_path / "other-redis") as other:
        assert wh_stack.engine is not None
        twin = Webhooks.assemble(
            wh_stack.settings,
            connect(other.url),
            wh_stack.engine,
            key_layer,
            AsyncPartners(PartnerRegistry(wh_stack.engine)),
            FrozenClock(T0 + 60),
        )
        try:
            assert cursor is not None
            await twin.queue.start_at(cursor)
            assert await twin.relay.run_once() == 1
            assert await twin.sender.run_once() == 1
        finally:
            await twin.aclose()
            await twin.queue.client.aclose()
    first, second = receiver.received()
    assert first["jti"] == second["jti"] and (first["duplicate"], second["duplicate"]) == (
        False,
        True,
    )
    assert first["unverified_claims"]["events"] == second["unverified_claims"]["events"]
    assert row  # the row both came from


# -- a worker killed mid-send: the entry is claimed by another -----------------------------------


async def test_an_entry_held_by_a_killed_worker_is_delivered_by_another(
    wh_stack: Stack,
    own_redis: RedisServer,
    receiver: Receiver,
    hooks_for: HooksFactory,
) -> None:
    partner = with_webhook(wh_stack, "Patient Shop", receiver.url)
    clock = FrozenClock(T0)
    dying = hooks_for(clock, timeout=60.0)
    await dying.relay.run_once()
    record(wh_stack, EventType.DATA_DELIVERED, partner.client_id)
    await dying.relay.run_once()
    receiver.mode("hang")
    sending = asyncio.create_task(dying.sender.run_once())
    for _ in range(400):  # the push has reached the receiver, which holds it
        if receiver.state()["hanging"] == 1:
            break
        await asyncio.sleep(0.025)
    else:
        raise AssertionError("the push never reached the receiver")
    sending.cancel()  # the worker dies mid-push: nothing acknowledged
    with pytest.raises(asyncio.CancelledError):
        await sending
    await dying.aclose()
    await dying.queue.client.aclose()
    for _ in range(400):  # the receiver saw the connection go (and kept nothing of it)
        if receiver.state()["hanging"] == 0:
            break
        await asyncio.sleep(0.025)
    else:
        raise AssertionError("the receiver never saw the dead worker's connection close")
    with own_redis.raw_client() as raw:
        pending = raw.xpending(STREAM, GROUP)
        assert pending["pending"] == 1
        assert pending["consumers"] == [{"name": dying.sender.consumer.encode(), "pending": 1}]

    receiver.mode("up")
    # A worker that just started (a restarted broker) claims only entries idle long enough…
    cautious = hooks_for(clock)
    assert await cautious.sender.run_once() == 0
    # …and this one, told the dead worker's pushes cannot take longer than 0 s, takes it.
    restarted = hooks_for(clock, claim_idle_s=0.0)
    assert await restarted.sender.run_once() == 1
    arrived = receiver.received()
    assert len(arrived) == 1 and not arrived[0]["duplicate"]
    with own_redis.raw_client() as raw:
        assert raw.xpending(STREAM, GROUP)["pending"] == 0
        assert raw.xlen(STREAM) == 0


# -- where pushes go ----------------------------------------------------------------------------


async def test_a_redirect_is_not_followed(wh_stack: Stack, hooks_for: HooksFactory) -> None:
    hits: list[str] = []

    async def elsewhere(request: Request) -> Response:
        hits.append(request.method)
        return Response(status_code=202)

    with serve_app(
        lambda _url: Starlette(routes=[Route("/", elsewhere, methods=["POST"])])
    ) as target:

        async def moved(request: Request) -> Response:
            return Response(status_code=307, headers={"Location": f"{target.url}/"})

        app = Starlette(routes=[Route("/hook", moved, methods=["POST"])])
        with serve_app(lambda _url: app) as redirector:
            partner = with_webhook(wh_stack, "Moved Shop", f"{redirector.url}/hook")
            hooks = hooks_for(FrozenClock(T0))
            attempts: list[Attempt] = []
            hooks.sender.on_attempt.append(attempts.append)
            await hooks.relay.run_once()
            record(wh_stack, EventType.DATA_DELIVERED, partner.client_id)
            await hooks.relay.run_once()
            assert await hooks.sender.run_once() == 1
    assert hits == []
    assert [a.outcome for a in attempts] == ["redirect"]
    assert [e.last_error for e, _ in (await hooks.queue.listing()).waiting] == ["redirect"]


async def test_a_partner_with_an_encryption_key_gets_the_set_encrypted_to_it(
    wh_stack: Stack, receiver: Receiver, hooks_for: HooksFactory
) -> None:
    private = ECKey.generate_key("P-256", parameters={"use": "enc", "kid": "enc-1"})
    public = private.as_dict(private=False)
    partner = with_webhook(wh_stack, "Sealed Shop", receiver.url, jwks={"keys": [public]})
    hooks = hooks_for(FrozenClock(T0), encrypt=encrypt_to)
    await hooks.relay.run_once()
    record(wh_stack, EventType.DATA_DELIVERED, partner.client_id)
    await hooks.relay.run_once()
    assert await hooks.sender.run_once() == 1
    (arrived,) = receiver.received()
    assert arrived["token"].count(".") == 4 and arrived["unverified_claims"] is None
    opened = jwe.decrypt_compact(arrived["token"], private)
    assert opened.plaintext is not None
    claims = verified(opened.plaintext.decode(), jwks_of(wh_stack))
    assert claims["aud"] == partner.client_id


async def test_a_share_never_waits_for_webhooks_and_redis_down_only_pauses_them(
    wh_stack: Stack, own_redis: RedisServer, receiver: Receiver, hooks_for: HooksFactory
) -> None:
    """The queue's Redis gone: the relay and the sender fail their pass with
    `StoreUnavailable` (the task logs a warning and goes on), the trail still takes rows, and
    nothing is lost: the rows are relayed once Redis is back."""
    from sharelock.store import StoreUnavailable

    partner = with_webhook(wh_stack, "Paused Shop", receiver.url)
    hooks = hooks_for(FrozenClock(T0))
    await hooks.relay.run_once()
    own_redis.pause()
    try:
        row = record(wh_stack, EventType.DATA_DELIVERED, partner.client_id)
        with pytest.raises(StoreUnavailable) as failed:
            await hooks.relay.run_once()
        assert "webhook" in str(failed.value) and partner.client_id not in str(failed.value)
    finally:
        own_redis.resume()
    assert await hooks.relay.run_once() == 1
    assert await hooks.sender.run_once() == 1
    assert [a["jti"] for a in receiver.received()] and row


# -- a whole share, through `serve`'s own background task ---------------------------------------


def test_a_whole_share_produces_signed_events_without_personal_data(
    make_stack: StackFactory, sandbox_url: str, tmp_path: Path
) -> None:
    receiver = Receiver(sandbox_url, "whole-share")
    httpx.delete(receiver.url, timeout=5)
    with (
        RedisServer(tmp_path / "redis") as redis_server,
        make_stack(
            redis_url=redis_server.url,
            sandbox_url=sandbox_url,
            webhook_enabled=True,
            webhook_interval_seconds=0.1,
        ) as stack,
    ):
        partner = with_webhook(stack, "Listening Shop", receiver.url)
        with redis_server.raw_client() as raw:
            wait_for(lambda: raw.exists(CURSOR) == 1, "the relay's first pass")

        share = Share(stack, partner=partner)
        share.collect()
        exchanged = share.exchange(share.approve_and_get_code())
        assert exchanged.status_code == 200, exchanged.text
        token = exchanged.json()["access_token"]
        shared = share.fetch(token)
        assert shared.status_code == 200, shared.text
        refused = Share(stack, partner=partner)
        refused.collect()
        assert refused.decide(False).status_code == 200

        wait_for(lambda: len(receiver.received()) == 2, "two SETs at the receiver")
        keys = jwks_of(stack)
        login_hash = stack.audit_rows("data_delivered", flow_id=share.flow_id)[0].login_hash
    by_type = {}
    for arrival in receiver.received():
        claims = verified(arrival["token"], keys)
        by_type[next(iter(claims["events"])).removeprefix(EVENT_URI_PREFIX)] = claims
    delivered, refusal = by_type[SHARE_DELIVERED], by_type[SHARE_REFUSED]
    assert delivered["iss"] == stack.url and delivered["aud"] == partner.client_id
    assert delivered["txn"] == flow_ref(share.flow_id)
    assert delivered["events"] == {
        EVENT_URI_PREFIX + SHARE_DELIVERED: {
            "occurred_at": delivered["events"][EVENT_URI_PREFIX + SHARE_DELIVERED]["occurred_at"],
            "flow_ref": flow_ref(share.flow_id),
            "delivery_key": digest(token),  # what the partner can match: its token's SHA-256
        }
    }
    assert refusal["txn"] == flow_ref(refused.flow_id)
    # Nothing personal, nothing secret: planted values checked in the SETs as sent.
    planted = [FAMILY_NAME, GIVEN_NAME, IBAN, "alice", "alice-pass", share.flow_id, token]
    planted += [refused.flow_id, str(login_hash)]
    for arrival in receiver.received():
        for value in planted:
            assert value not in arrival["token"]
            assert value not in str(arrival["unverified_claims"])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
