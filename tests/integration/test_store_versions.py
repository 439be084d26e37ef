"""Fewer round trips without a weaker compare-and-set, on a real redis-server and the real HSM:
an update of a record the caller already read compares against the sealed bytes it read,
reads again only when another writer came in between, and decides on what is stored; a flow
is written with its expiry-index entry and ended with it, and a transition carries the flow's
records that change with it, each in one script. Round trips are
counted as the store's client sends them, on a server of this module's own."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sharelock.audit import AuditTrail
from sharelock.clock import FrozenClock
from sharelock.config import Retention, Settings
from sharelock.db import create_engine_for, migrate
from sharelock.flow import AsyncAudit, FlowConflict, Records
from sharelock.flow import expiry as flow_expiry
from sharelock.flow.record_types import CollectedData
from sharelock.flow.records import (
    CODE_USED,
    COLLECTED,
    ENVELOPE_SEEN,
    FLOW,
    IDENTITY_DOCUMENT,
    RESUME,
    TOKEN,
    Erase,
    Put,
    handle_in_slot_of,
)
from sharelock.flow.session import Sessions
from sharelock.flow.state import Status, flow_ref
from sharelock.keys import KeyLayer
from sharelock.oauth import CodeUse, TokenGrant, digest
from sharelock.oauth.authorization import AuthorizationRequest
from sharelock.store import SealedStore, Sealer, connect, redis_max_lifetime
from tests.support.redis_server import RedisServer

REQUEST = AuthorizationRequest(
    client_id="sl_test",
    redirect_uri="https://partner.example/cb",
    scopes=("identity",),
    state="s",
    code_challenge="c" * 43,
)
AWAITING = frozenset({Status.AWAITING_CREDENTIALS})
COLL = Status.COLLECTING


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
async def store(redis_server: RedisServer, key_layer: KeyLayer) -> AsyncIterator[SealedStore]:
    store = SealedStore(
        connect(redis_server.url), Sealer(key_layer), max_lifetime=redis_max_lifetime(Retention())
    )
    yield store
    await store.aclose()


@pytest.fixture
def sessions(store: SealedStore, settings: Settings, tmp_path: Path) -> Sessions:
    engine = create_engine_for(f"sqlite:///{tmp_path}/audit.db")
    migrate(engine)
    records = Records(store, settings.retention, FrozenClock())
    return Sessions(settings, records, AsyncAudit(AuditTrail(engine)), records.clock)


@contextmanager
def sent(store: SealedStore) -> Iterator[list[str]]:
    """The commands the store's client sends in the block, each a round trip (a script's
    own commands run inside Redis)."""
    names: list[str] = []
    client = store.client
    send = client.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        names.append(str(args[0]).upper())
        return await send(*args, **options)

    client.execute_command = counted  # type: ignore[method-assign]
    try:
        yield names
    finally:
        del client.execute_command


def soon() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=5)


def bump(raw: bytes) -> bytes:
    document = json.loads(raw)
    return json.dumps({"n": document["n"] + 1}).encode()


# -- the store ----------------------------------------------------------------------------------


async def test_an_update_of_what_was_read_does_not_read_again(
    store: SealedStore, redis_server: RedisServer
) -> None:
    record = os.urandom(8).hex()
    await store.put("doc", record, b'{"n": 1}', expire_at=soon())
    known = await store.get_versioned("doc", record)
    assert known is not None and known.value == b'{"n": 1}'
    await store.update("doc", record, bump, known=known)  # loads the script
    known = await store.get_versioned("doc", record)
    with sent(store) as commands:
        updated = await store.update("doc", record, bump, known=known)
    assert commands == ["EVALSHA"]
    assert updated is not None and json.loads(updated.value) == {"n": 3}
    with redis_server.raw_client() as raw:
        assert raw.get(store.key("doc", record)) == updated.sealed
    # What the update answers is itself a version: the next one needs no read either.
    with sent(store) as commands:
        again = await store.update("doc", record, bump, known=updated)
    assert commands == ["EVALSHA"]
    assert again is not None and json.loads(again.value) == {"n": 4}


async def test_a_version_overtaken_by_another_writer_is_read_again(store: SealedStore) -> None:
    record = os.urandom(8).hex()
    await store.put("doc", record, b'{"n": 1}', expire_at=soon())
    known = await store.get_versioned("doc", record)
    await store.replace("doc", record, b'{"n": 10}')  # another request, meanwhile
    updated = await store.update("doc", record, bump, known=known)
    # Applied to what is stored, not to what the caller held.
    assert updated is not None and json.loads(updated.value) == {"n": 11}
    assert await store.get("doc", record) == updated.value


async def test_what_the_caller_held_decides_nothing(store: SealedStore) -> None:
    record = os.urandom(8).hex()
    await store.put("doc", record, b'{"n": 1}', expire_at=soon())
    known = await store.get_versioned("doc", record)
    await store.replace("doc", record, b'{"n": 2}')

    def only_even(raw: bytes) -> bytes:
        if json.loads(raw)["n"] % 2:
            raise LookupError("odd")
        return bump(raw)

    # Refused on the held version (odd), accepted on the stored one (even).
    updated = await store.update("doc", record, only_even, known=known)
    assert updated is not None and json.loads(updated.value) == {"n": 3}
    # And refused on what is stored: the refusal propagates, nothing is written.
    with pytest.raises(LookupError):
        await store.update("doc", record, only_even, known=updated)
    assert await store.get("doc", record) == b'{"n": 3}'


async def test_a_version_of_a_record_gone_updates_nothing(store: SealedStore) -> None:
    record = os.urandom(8).hex()
    await store.put("doc", record, b'{"n": 1}', expire_at=soon())
    known = await store.get_versioned("doc", record)
    await store.delete("doc", record)
    assert await store.update("doc", record, bump, known=known) is None
    assert not await store.exists("doc", record)


async def test_an_update_keeps_the_records_end(store: SealedStore) -> None:
    record = os.urandom(8).hex()
    await store.put("doc", record, b'{"n": 1}', expire_at=soon())
    end = await store.expires_at("doc", record)
    known = await store.get_versioned("doc", record)
    await store.update("doc", record, bump, known=known)
    assert await store.expires_at("doc", record) == end


# -- a flow's session ---------------------------------------------------------------------------


async def test_a_flow_starts_with_its_index_entry_in_one_script(
    sessions: Sessions, store: SealedStore, redis_server: RedisServer
) -> None:
    await sessions.start(REQUEST, None)  # the script loaded
    with sent(store) as commands:
        started = await sessions.start(REQUEST, None)
    assert commands == ["EVALSHA"]
    ref = flow_ref(started.flow_id)
    with redis_server.raw_client() as raw:
        index = store.key("index", flow_expiry.index_of(ref))
        score = raw.zscore(index, flow_expiry.member(ref, REQUEST.client_id))
        flow_key = store.key("flow", FLOW.store_id(started.flow_id))
        assert raw.pexpiretime(flow_key) == pytest.approx(started.expires_at * 1000, abs=1)
    assert score == pytest.approx(started.expires_at)


async def test_a_transition_reads_the_flow_once_per_request(sessions: Sessions) -> None:
    warm = await sessions.start(REQUEST, None)
    flow = await sessions.load(warm.flow_id, warm.session_secret)
    await sessions.transition(flow, AWAITING, status=Status.COLLECTING)  # the script loaded
    started = await sessions.start(REQUEST, None)
    with sent(sessions.records.store) as commands:
        flow = await sessions.load(started.flow_id, started.session_secret)
        collecting = await sessions.transition(flow, AWAITING, status=Status.COLLECTING)
        collected = await sessions.transition(
            collecting, frozenset({Status.COLLECTING}), status=Status.COLLECTED
        )
    assert collected.status is Status.COLLECTED
    assert commands == ["GET", "EVALSHA", "EVALSHA"]


async def test_a_transition_checks_the_status_stored_not_the_one_read(
    sessions: Sessions,
) -> None:
    """Two tabs: both read the flow; the other moves it first. This tab's step, allowed on
    what it read, is refused on what is stored."""
    started = await sessions.start(REQUEST, None)
    flow = await sessions.load(started.flow_id, started.session_secret)

    async def other_tab() -> Any:
        mine = await sessions.load(started.flow_id, started.session_secret)
        return await sessions.transition(mine, AWAITING, status=Status.COLLECTING)

    # Its own task, as each request is: it does not see what this one read.
    moved = await asyncio.create_task(other_tab())
    assert moved.status is Status.COLLECTING
    with pytest.raises(FlowConflict):
        await sessions.transition(flow, AWAITING, status=Status.COLLECTING)


async def test_ending_a_flow_is_one_script(
    sessions: Sessions, store: SealedStore, redis_server: RedisServer
) -> None:
    records = sessions.records
    warm = await sessions.start(REQUEST, None)
    await sessions.end(await sessions.load(warm.flow_id, warm.session_secret))  # script loaded
    started = await sessions.start(REQUEST, None)
    flow = await sessions.load(started.flow_id, started.session_secret)
    await records.put(IDENTITY_DOCUMENT, started.flow_id, b"jpeg", until=flow.expires_at)
    await records.put(RESUME, started.flow_id, b"resume", until=flow.expires_at)
    with sent(store) as commands:
        await sessions.end(flow)
    assert commands == ["EVALSHA"]
    for kind in (FLOW, IDENTITY_DOCUMENT, RESUME):
        assert not await records.exists(kind, started.flow_id)
    ref = flow_ref(started.flow_id)
    with redis_server.raw_client() as raw:
        index = store.key("index", flow_expiry.index_of(ref))
        assert raw.zscore(index, flow_expiry.member(ref, REQUEST.client_id)) is None


# -- records that change with a transition ------------------------------------------------------


async def test_records_written_and_erased_along_a_transition_in_one_script(
    sessions: Sessions, store: SealedStore
) -> None:
    records = sessions.records
    warm = await sessions.start(REQUEST, None)
    flow = await sessions.load(warm.flow_id, warm.session_secret)
    await sessions.transition(flow, AWAITING, along=[Erase(RESUME, warm.flow_id)], status=COLL)
    started = await sessions.start(REQUEST, None)
    flow = await sessions.load(started.flow_id, started.session_secret)
    await records.put(RESUME, started.flow_id, b"resume", until=flow.expires_at)
    collected = CollectedData({"identity": {"family_name": "X"}}, collected_at=1.0)
    with sent(store) as commands:
        moved = await sessions.transition(
            flow,
            AWAITING,
            along=[
                Put(COLLECTED, started.flow_id, collected, until=flow.expires_at),
                Erase(RESUME, started.flow_id),
            ],
            status=COLL,
        )
    assert commands == ["EVALSHA"]
    assert moved.status is COLL
    assert await records.get(COLLECTED, started.flow_id) == collected
    assert not await records.exists(RESUME, started.flow_id)
    ends = await records.expires(COLLECTED, started.flow_id)
    assert ends is not None and ends.timestamp() <= flow.expires_at


async def test_a_refused_transition_writes_nothing_along(sessions: Sessions) -> None:
    records = sessions.records
    started = await sessions.start(REQUEST, None)
    flow = await sessions.load(started.flow_id, started.session_secret)
    await records.put(RESUME, started.flow_id, b"resume", until=flow.expires_at)
    collected = CollectedData({"identity": {"family_name": "X"}}, collected_at=1.0)
    with pytest.raises(FlowConflict):
        await sessions.transition(
            flow,
            frozenset({Status.COLLECTED}),  # not what the flow is
            along=[Put(COLLECTED, started.flow_id, collected), Erase(RESUME, started.flow_id)],
            status=Status.APPROVED,
        )
    assert await records.get(COLLECTED, started.flow_id) is None
    assert await records.get(RESUME, started.flow_id) == b"resume"


async def test_a_record_of_another_slot_is_refused_before_anything_is_sent(
    sessions: Sessions, store: SealedStore
) -> None:
    started = await sessions.start(REQUEST, None)
    flow = await sessions.load(started.flow_id, started.session_secret)
    with sent(store) as commands, pytest.raises(ValueError, match="slot"):
        await sessions.transition(
            flow, AWAITING, along=[Put(ENVELOPE_SEEN, "a" * 64, b"1")], status=COLL
        )
    assert commands == []
    assert (await sessions.load(started.flow_id, started.session_secret)).status is not COLL


async def test_records_along_an_update_follow_it_when_it_is_read_again(
    store: SealedStore,
) -> None:
    record, other = os.urandom(8).hex(), os.urandom(8).hex()
    await store.put("doc", record, b'{"n": 1}', expire_at=soon())
    await store.put("old", other, b"x", expire_at=soon())
    known = await store.get_versioned("doc", record)
    await store.replace("doc", record, b'{"n": 5}')  # another writer: the known version fails
    updated = await store.update(
        "doc",
        record,
        bump,
        known=known,
        writes=[("new", other, b"written along", soon())],
        deletes=[("old", other)],
    )
    assert updated is not None and json.loads(updated.value) == {"n": 6}
    assert await store.get("new", other) == b"written along"
    assert not await store.exists("old", other)


# -- records written together ---------------------------------------------------------------

GRANT = TokenGrant("f" * 32, "sl_test", "sandbox-bank", "h" * 64, ["identity"])


async def test_records_written_together_in_one_script(sessions: Sessions) -> None:
    records = sessions.records
    flow_id = os.urandom(12).hex()
    token, code = digest(handle_in_slot_of(flow_id)), digest(handle_in_slot_of(flow_id))
    use = CodeUse(token=token, issued_at=1.0)
    until = records.clock.now() + 30
    await records.put_all([Put(CODE_USED, code, use, until=until)])  # the script loaded
    with sent(records.store) as commands:
        await records.put_all(
            [Put(TOKEN, token, GRANT, until=until), Put(CODE_USED, code, use, until=until)]
        )
    assert commands == ["EVALSHA"]
    assert await records.get(TOKEN, token) == GRANT
    assert await records.get(CODE_USED, code) == use
    for kind, record in ((TOKEN, token), (CODE_USED, code)):
        ends = await records.expires(kind, record)
        assert ends is not None and ends.timestamp() == pytest.approx(until, abs=0.01)
    with sent(records.store) as commands, pytest.raises(ValueError, match="slot"):
        await records.put_all([Put(TOKEN, token, GRANT), Put(ENVELOPE_SEEN, "a" * 64, b"1")])
    assert commands == []
