"""The flow's parts below the HTTP layer, on a real Redis and the real HSM, with an injected
clock: typed records and their lifetimes (`flow/records.py`), and the session's rules that
depend on time (`flow/session.py`). Time moves by `FrozenClock.advance`, never by sleeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis

from sharelock.audit import AuditTrail
from sharelock.clock import FrozenClock
from sharelock.config import Retention, Settings
from sharelock.db import create_engine_for, migrate
from sharelock.flow import KINDS, AsyncAudit, FlowConflict, FlowForbidden, FlowNotFound, Records
from sharelock.flow.record_types import IdentityKept, Release
from sharelock.flow.records import CODE, FLOW, IDENTITY, RELEASE
from sharelock.flow.session import Sessions
from sharelock.flow.state import Status
from sharelock.keys import KeyLayer
from sharelock.oauth.authorization import AuthorizationRequest
from sharelock.oauth.grants import CodeGrant
from sharelock.store import SealedStore, redis_max_lifetime
from tests.support.redis_server import RedisServer

REQUEST = AuthorizationRequest(
    client_id="sl_test",
    redirect_uri="https://partner.example/cb",
    scopes=("identity",),
    state="s",
    code_challenge="c" * 43,
)


@pytest.fixture
async def records(
    key_layer: KeyLayer, redis_server: RedisServer, settings: Settings
) -> AsyncIterator[Records]:
    store = SealedStore.from_url(
        redis_server.url, key_layer, settings.retention, namespace="flowrecords"
    )
    try:
        yield Records(store, settings.retention, FrozenClock())
    finally:
        await store.aclose()


def _ttl_s(redis_server: RedisServer, key: str) -> float:
    with redis.Redis.from_url(redis_server.url) as raw:
        return int(raw.pttl(key)) / 1000


def test_every_kind_fits_in_the_store_and_names_a_real_limit() -> None:
    retention = Retention()
    names = [kind.name for kind in KINDS]
    assert len(names) == len(set(names))
    for kind in KINDS:
        assert isinstance(kind.limit, timedelta) or kind.limit in Retention.model_fields
        assert timedelta(0) < kind.lifetime(retention) <= redis_max_lifetime(retention)


async def test_typed_records_round_trip_sealed(records: Records, redis_server: RedisServer) -> None:
    grant = CodeGrant("f" * 32, "sl_x", "https://p/cb", "c" * 43, ["identity"], None, None, 1.5)
    await records.put(CODE, "d" * 64, grant)
    assert await records.get(CODE, "d" * 64) == grant
    assert await records.take(CODE, "d" * 64) == grant
    assert await records.take(CODE, "d" * 64) is None
    secret = Release({"identity": {"family_name": "Planted-Name"}}, "sandbox-bank", ["identity"])
    await records.put(RELEASE, "f" * 32, secret)
    assert "Planted-Name" not in repr(await records.get(RELEASE, "f" * 32))
    with redis.Redis.from_url(redis_server.url) as raw:
        assert b"Planted-Name" not in raw.get(
            records.store.key("release", RELEASE.store_id("f" * 32))
        )


async def test_a_record_never_outlives_its_kind(
    records: Records, redis_server: RedisServer, settings: Settings
) -> None:
    now = records.clock.now()
    identity = IdentityKept({"family_name": "X"})
    # Asked for a year, the identity kept for verification still lives 72 hours at most.
    ref = "ab" * 16
    await records.put(IDENTITY, ref, identity, until=now + 365 * 86400)
    key = records.store.key(IDENTITY.name, IDENTITY.store_id(ref))
    assert 72 * 3600 - 5 < _ttl_s(redis_server, key) <= 72 * 3600
    # A shorter end is kept: a code never outlives its session.
    grant = CodeGrant("f" * 32, "sl_x", "https://p/cb", "c" * 43, [], None, None, 0)
    await records.put(CODE, "e" * 64, grant, until=now + 10)
    key = records.store.key(CODE.name, CODE.store_id("e" * 64))
    assert 5 < _ttl_s(redis_server, key) <= 10


@pytest.fixture
def sessions(records: Records, settings: Settings, tmp_path: object) -> Sessions:
    engine = create_engine_for(f"sqlite:///{tmp_path}/audit.db")
    migrate(engine)
    return Sessions(settings, records, AsyncAudit(AuditTrail(engine)), records.clock)


async def test_a_session_is_bound_to_its_secret_and_ends_on_the_clock(
    sessions: Sessions, records: Records
) -> None:
    clock = records.clock
    assert isinstance(clock, FrozenClock)
    started = await sessions.start(REQUEST, "Mozilla/5.0 Firefox/130.0")
    flow = await sessions.load(started.flow_id, started.session_secret)
    assert flow.expires_at == clock.now() + 3600
    with pytest.raises(FlowForbidden):
        await sessions.load(started.flow_id, "x" * 43)
    with pytest.raises(FlowForbidden):
        await sessions.load(started.flow_id, None)
    clock.advance(3600)
    with pytest.raises(FlowNotFound):
        await sessions.load(started.flow_id, started.session_secret)


async def test_a_collection_left_by_a_crashed_worker_unlocks_after_its_deadline(
    sessions: Sessions, records: Records, settings: Settings
) -> None:
    clock = records.clock
    assert isinstance(clock, FrozenClock)
    started = await sessions.start(REQUEST, None)
    flow = await sessions.load(started.flow_id, started.session_secret)
    accepts = frozenset({Status.AWAITING_CREDENTIALS})
    flow = await sessions.transition(
        flow, accepts, status=Status.COLLECTING, collecting_since=clock.now()
    )
    with pytest.raises(FlowConflict):
        await sessions.transition(flow, accepts, status=Status.COLLECTING)
    clock.advance(3 * settings.connector_timeout + 5 + 1)
    moved = await sessions.transition(flow, accepts, status=Status.COLLECTING)
    assert moved.status is Status.COLLECTING


async def test_ending_a_flow_leaves_nothing_of_it(
    sessions: Sessions, records: Records, redis_server: RedisServer
) -> None:
    started = await sessions.start(REQUEST, None)
    flow = await sessions.load(started.flow_id, started.session_secret)
    await sessions.end(flow)
    assert await records.get(FLOW, started.flow_id) is None
    with redis.Redis.from_url(redis_server.url) as raw:
        keys = [k.decode() for k in raw.scan_iter(match="flowrecords:*")]
    assert not [k for k in keys if started.flow_id in k]
