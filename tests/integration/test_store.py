"""`SealedStore` against a real redis-server and the real SoftHSM token (checklist C and D).

One server is shared by the module; tests that kill, pause or fill a server start their own.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from sharelock.config import Retention, Settings
from sharelock.embedded import EmbeddedRedis, redis_url_for
from sharelock.errors import ConfigError, ServiceUnavailable
from sharelock.keys import KeyLayer
from sharelock.store import (
    SealedStore,
    Sealer,
    SealError,
    StoreConflict,
    StoreUnavailable,
    connect,
    redis_max_lifetime,
    scan_all,
)
from tests.support.redis_server import RedisServer

MAX_LIFETIME = redis_max_lifetime(Retention())
FAULT_TIMEOUT = 0.5  # socket timeout of the stores used against killed or paused servers


def soon(**delta: float) -> datetime:
    return datetime.now(UTC) + timedelta(**delta)


def unique(label: str) -> str:
    return f"{label}-{os.urandom(8).hex()}"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis_server.raw_client() as client:
        yield client


def make_store(url: str, key_layer: KeyLayer, **kwargs: Any) -> SealedStore:
    timeout = kwargs.pop("socket_timeout", 2.0)
    return SealedStore(
        connect(url, socket_timeout=timeout),
        Sealer(key_layer),
        max_lifetime=kwargs.pop("max_lifetime", MAX_LIFETIME),
        **kwargs,
    )


@pytest.fixture
async def store(redis_server: RedisServer, key_layer: KeyLayer) -> AsyncIterator[SealedStore]:
    store = make_store(redis_server.url, key_layer)
    yield store
    await store.aclose()


@pytest.fixture
def spare_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, free to be killed or paused."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def spare_store(spare_server: RedisServer, key_layer: KeyLayer) -> AsyncIterator[SealedStore]:
    store = make_store(spare_server.url, key_layer, socket_timeout=FAULT_TIMEOUT)
    yield store
    await store.aclose()


# -- the client --------------------------------------------------------------------------


async def test_client_fails_fast_and_uses_hiredis(redis_server: RedisServer) -> None:
    client = connect(redis_server.url, socket_timeout=1.5)
    try:
        pool = client.connection_pool
        connection = pool.make_connection()  # type: ignore[no-untyped-call]
        assert connection.retry.get_retries() == 0  # a timed-out write is never re-sent
        assert connection.socket_timeout == 1.5
        assert connection.socket_connect_timeout == 1.5
        assert HIREDIS_AVAILABLE
        assert type(connection._parser).__name__ == "_AsyncHiredisParser"
    finally:
        await client.aclose()


# -- sealing as seen from Redis ----------------------------------------------------------


def encodings(needle: bytes) -> list[bytes]:
    """The needle as it could appear in a dump: raw, hex, and base64 (standard and URL-safe) at
    each of the three alignments (only the characters that depend on the needle alone)."""
    forms = [needle, needle.hex().encode(), needle.hex().upper().encode()]
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * pad + needle)
            forms.append(encoded[4 if pad else 0 : -4])
    return forms


async def test_no_value_is_in_clear_in_redis(store: SealedStore, raw: redis.Redis) -> None:
    secret = unique("Alice-Martin-FR7630006000011234567890189").encode()
    doc_secret = unique("alice.martin@example.test")
    flow_id = unique("flow")
    await store.put("credentials", flow_id, secret, expire_at=soon(minutes=5))
    await store.put_json("data", flow_id, {"email": doc_secret}, expire_at=soon(minutes=5))
    await store.put_new(
        "identity", flow_id, secret, expire_at=soon(hours=72) - timedelta(seconds=1)
    )
    await store.put_json("flow", flow_id, {"n": 0}, expire_at=soon(minutes=5))
    await store.update_json("flow", flow_id, lambda d: {**d, "note": doc_secret})

    needles = encodings(secret) + encodings(doc_secret.encode())
    keys = list(raw.scan_iter(match="*", count=1000))
    assert len(keys) >= 4
    for key in keys:
        for blob in (raw.get(key), raw.dump(key)):
            assert blob is not None
            for needle in needles:
                assert needle not in blob, f"clear value found under {key!r}"
    # Every key the store wrote has a lifetime.
    for name, ttl in [entry async for entry in store.scan_all()]:
        assert 0 < ttl <= MAX_LIFETIME.total_seconds() * 1000, name


async def test_keys_are_namespaced(
    redis_server: RedisServer, key_layer: KeyLayer, raw: redis.Redis
) -> None:
    store = make_store(redis_server.url, key_layer, namespace="tenant-a")
    try:
        record = unique("id")
        assert store.key("flow", record) == f"tenant-a:flow:{record}"
        await store.put("flow", record, b"x", expire_at=soon(minutes=1))
        assert raw.exists(f"tenant-a:flow:{record}") == 1
        names = [name async for name, _ in scan_all(store._client, "tenant-a")]
        assert f"tenant-a:flow:{record}" in names
        assert all(name.startswith("tenant-a:") for name in names)
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("kind", "record_id"),
    [
        ("", "x"),
        ("Flow", "x"),
        ("flow:x", "y"),
        ("1flow", "x"),
        ("flow", ""),
        ("flow", "a b"),
        ("flow", "a*"),
        ("flow", "a?"),
        ("flow", "x" * 257),
        ("flow", "é"),
    ],
)
async def test_bad_names_are_refused_without_echo(
    store: SealedStore, kind: str, record_id: str
) -> None:
    with pytest.raises(ValueError) as caught:
        await store.get(kind, record_id)
    if len(record_id) > 1:
        assert record_id not in str(caught.value)


async def test_a_value_moved_to_another_key_does_not_open(
    store: SealedStore, raw: redis.Redis
) -> None:
    source, other = unique("flow"), unique("flow")
    await store.put("data", source, b"identity of alice", expire_at=soon(minutes=5))
    sealed = raw.get(store.key("data", source))
    assert sealed is not None
    for kind, record in (("data", other), ("credentials", source), ("identity", source)):
        raw.set(store.key(kind, record), sealed, px=60_000)
        with pytest.raises(SealError):
            await store.get(kind, record)
    # The original still opens; a rename (same bytes, new name) does not.
    assert await store.get("data", source) == b"identity of alice"
    raw.rename(store.key("data", source), store.key("data", other))
    with pytest.raises(SealError):
        await store.take("data", other)
    assert raw.exists(store.key("data", other)) == 0  # take fails closed: the value is gone


async def test_another_sealer_opens_through_the_hsm(
    redis_server: RedisServer, key_layer: KeyLayer
) -> None:
    writer = make_store(redis_server.url, key_layer)
    reader = make_store(redis_server.url, key_layer)
    try:
        record = unique("flow")
        await writer.put_json("data", record, {"iban": "FR76"}, expire_at=soon(minutes=5))
        await writer.put("credentials", record, b"jwe", expire_at=soon(minutes=5))
        assert await reader.get_json("data", record) == {"iban": "FR76"}
        assert await reader.take("credentials", record) == b"jwe"
        assert reader.sealer.stats.unwraps == 1  # one data key, unwrapped once, then cached
        assert writer.sealer.stats.unwraps == 0
    finally:
        await writer.aclose()
        await reader.aclose()


CHILD = """
import asyncio, sys
from pathlib import Path
from sharelock.config import Settings
from sharelock.keys import KeyLayer
from sharelock.store import Sealer

async def main() -> None:
    keys = KeyLayer(Settings(state_dir=Path(sys.argv[1]), hsm_token_label=sys.argv[2]))
    sealer = Sealer(keys)
    opened = await sealer.open(bytes.fromhex(sys.argv[3]), b"sl:data:x")
    sys.stdout.write((await sealer.seal(opened + b" and back", b"sl:data:x")).hex())
    keys.close()

asyncio.run(main())
"""


async def test_values_cross_real_processes(settings: Settings, key_layer: KeyLayer) -> None:
    """Another broker process, with its own PKCS#11 session, opens and seals values too."""
    sealer = Sealer(key_layer)
    sealed = await sealer.seal(b"from the parent", b"sl:data:x")
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            CHILD,
            str(settings.state_dir),
            settings.hsm_token_label,
            sealed.hex(),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert await sealer.open(bytes.fromhex(result.stdout.decode()), b"sl:data:x") == (
        b"from the parent and back"
    )
    assert sealer.stats.unwraps == 1


# -- lifetimes ---------------------------------------------------------------------------


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def test_expiry_is_absolute_and_never_extended(store: SealedStore, raw: redis.Redis) -> None:
    record = unique("flow")
    key = store.key("flow", record)
    expire_at = soon(minutes=10)
    await store.put_json("flow", record, {"step": 1}, expire_at=expire_at)
    assert raw.pexpiretime(key) == ms(expire_at)
    assert await store.expires_at("flow", record) == datetime.fromtimestamp(
        ms(expire_at) / 1000, UTC
    )
    ttl = await store.ttl_ms("flow", record)
    assert ttl is not None and 595_000 < ttl <= 600_000

    await asyncio.sleep(0.01)
    assert await store.replace_json("flow", record, {"step": 2})
    assert raw.pexpiretime(key) == ms(expire_at)
    assert await store.update_json("flow", record, lambda d: {**d, "step": 3}) == {"step": 3}
    assert raw.pexpiretime(key) == ms(expire_at)
    assert await store.get_json("flow", record) == {"step": 3}
    assert raw.pexpiretime(key) == ms(expire_at)  # reading does not touch it either

    # put_new on an existing record changes nothing, not even the expiry.
    assert not await store.put_new_json("flow", record, {"step": 9}, expire_at=soon(hours=1))
    assert raw.pexpiretime(key) == ms(expire_at)
    assert await store.get_json("flow", record) == {"step": 3}


async def test_changes_to_a_missing_record_create_nothing(
    store: SealedStore, raw: redis.Redis
) -> None:
    record = unique("flow")
    calls: list[Any] = []

    def fn(doc: dict[str, Any]) -> dict[str, Any]:
        calls.append(doc)
        return {"resurrected": True}

    assert not await store.replace("flow", record, b"x")
    assert await store.update_json("flow", record, fn) is None
    assert calls == []
    assert raw.exists(store.key("flow", record)) == 0
    assert await store.ttl_ms("flow", record) is None
    assert await store.expires_at("flow", record) is None


async def test_expiry_is_capped(redis_server: RedisServer, key_layer: KeyLayer) -> None:
    store = make_store(redis_server.url, key_layer)
    try:
        assert store.max_lifetime == timedelta(hours=72)
        record = unique("identity")
        for bad in (
            soon(hours=72, seconds=1),
            soon(days=400),
            soon(seconds=-1),
            datetime.now(UTC),
            datetime.now() + timedelta(minutes=1),  # naive
        ):
            with pytest.raises(ValueError):
                await store.put("identity", record, b"x", expire_at=bad)
            with pytest.raises(ValueError):
                await store.put_new("identity", record, b"x", expire_at=bad)
        assert await store.ttl_ms("identity", record) is None
        await store.put("identity", record, b"x", expire_at=soon(hours=72, seconds=-1))
        ttl = await store.ttl_ms("identity", record)
        assert ttl is not None and 0 < ttl <= 259_200_000  # checklist 36
    finally:
        await store.aclose()
    short = make_store(redis_server.url, key_layer, max_lifetime=timedelta(minutes=1))
    try:
        with pytest.raises(ValueError):
            await short.put("code", unique("c"), b"x", expire_at=soon(minutes=2))
    finally:
        await short.aclose()


async def test_expiry_really_happens(store: SealedStore, raw: redis.Redis) -> None:
    record = unique("code")
    await store.put_json("code", record, {"client_id": "c"}, expire_at=soon(seconds=0.3))
    assert await store.get_json("code", record) == {"client_id": "c"}
    await asyncio.sleep(0.45)
    assert await store.get_json("code", record) is None
    assert await store.take_json("code", record) is None
    assert raw.exists(store.key("code", record)) == 0


# -- one-time reads and compare-and-swap -------------------------------------------------


async def test_take_is_one_time_under_concurrency(store: SealedStore, raw: redis.Redis) -> None:
    for trial in range(20):
        record = unique(f"release{trial}")
        value = os.urandom(24)
        await store.put("release", record, value, expire_at=soon(minutes=1))
        results = await asyncio.gather(*(store.take("release", record) for _ in range(20)))
        winners = [r for r in results if r is not None]
        assert winners == [value], f"trial {trial}: {len(winners)} readers got the value"
        assert raw.exists(store.key("release", record)) == 0


async def test_update_json_serialises_concurrent_writers(store: SealedStore) -> None:
    record = unique("flow")
    await store.put_json("flow", record, {"count": 0}, expire_at=soon(minutes=1))

    def bump(doc: dict[str, Any]) -> dict[str, Any]:
        return {"count": doc["count"] + 1}

    await asyncio.gather(*(store.update_json("flow", record, bump, attempts=40) for _ in range(20)))
    assert await store.get_json("flow", record) == {"count": 20}


async def test_update_json_none_or_error_leaves_the_document(
    store: SealedStore, raw: redis.Redis
) -> None:
    record = unique("flow")
    await store.put_json("flow", record, {"status": "started"}, expire_at=soon(minutes=1))
    before = raw.get(store.key("flow", record))
    assert await store.update_json("flow", record, lambda d: None) == {"status": "started"}
    assert raw.get(store.key("flow", record)) == before  # nothing rewritten

    def refuse(doc: dict[str, Any]) -> dict[str, Any]:
        raise LookupError("not allowed in this status")

    with pytest.raises(LookupError):
        await store.update_json("flow", record, refuse)
    assert await store.get_json("flow", record) == {"status": "started"}


async def test_update_json_gives_up_with_store_conflict(
    store: SealedStore, raw: redis.Redis
) -> None:
    record = unique("flow")
    key = store.key("flow", record)
    # Two sealings of the same document (fresh nonces): a concurrent writer that rewrites the
    # document changes the stored bytes, which is what the compare-and-set compares.
    await store.put_json("flow", record, {"n": 0}, expire_at=soon(minutes=1))
    first = raw.get(key)
    await store.replace_json("flow", record, {"n": 0})
    second = raw.get(key)
    assert first and second and first != second
    calls = 0

    def raced(doc: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        stored = raw.get(key)
        raw.set(key, first if stored == second else second, xx=True, keepttl=True)
        return {"n": calls}

    with pytest.raises(StoreConflict):
        await store.update_json("flow", record, raced, attempts=3)
    assert calls == 3
    assert await store.get_json("flow", record) == {"n": 0}


# -- faults (checklist D) ----------------------------------------------------------------


async def every_operation_fails(store: SealedStore, record: str) -> None:
    """Each operation raises StoreUnavailable, with neither id nor value in the message."""
    operations = {
        "put": lambda: store.put("flow", record, b"v", expire_at=soon(minutes=1)),
        "put_new": lambda: store.put_new("flow", record, b"v", expire_at=soon(minutes=1)),
        "put_json": lambda: store.put_json("flow", record, {"a": 1}, expire_at=soon(minutes=1)),
        "get": lambda: store.get("flow", record),
        "get_json": lambda: store.get_json("flow", record),
        "take": lambda: store.take("flow", record),
        "take_json": lambda: store.take_json("flow", record),
        "replace": lambda: store.replace("flow", record, b"v"),
        "update_json": lambda: store.update_json("flow", record, lambda d: d),
        "delete": lambda: store.delete("flow", record),
        "exists": lambda: store.exists("flow", record),
        "ttl_ms": lambda: store.ttl_ms("flow", record),
        "expires_at": lambda: store.expires_at("flow", record),
        "ping": store.ping,
    }
    for name, operation in operations.items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            await operation()
        elapsed = time.monotonic() - started
        assert elapsed < FAULT_TIMEOUT + 1.0, f"{name} took {elapsed:.2f} s"
        assert isinstance(caught.value, ServiceUnavailable)
        assert record not in str(caught.value)
        assert caught.value.__cause__ is None
    with pytest.raises(StoreUnavailable):
        _ = [entry async for entry in store.scan_all()]


async def test_redis_killed(spare_server: RedisServer, spare_store: SealedStore) -> None:
    record = unique("code")
    await spare_store.put("code", record, b"grant", expire_at=soon(minutes=1))
    spare_server.kill()
    await every_operation_fails(spare_store, record)
    # Back without persistence: the code is gone for good (checklist 40).
    spare_server.start()
    await spare_store.ping()
    assert await spare_store.take("code", record) is None


async def test_redis_paused(spare_server: RedisServer, spare_store: SealedStore) -> None:
    record = unique("release")
    await spare_store.put("release", record, b"data", expire_at=soon(minutes=1))
    released = 0
    with spare_server.paused_for_block():
        for operation in ("take", "get", "ping"):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                if operation == "take":
                    await spare_store.take("release", record)
                elif operation == "get":
                    await spare_store.get("release", record)
                else:
                    await spare_store.ping()
            elapsed = time.monotonic() - started
            assert FAULT_TIMEOUT * 0.8 < elapsed < FAULT_TIMEOUT + 1.0, elapsed
    await spare_store.ping()
    # The timed-out GETDEL may have run once Redis woke up: the retry gets the value at most
    # once, and never after that (checklist 41).
    for _ in range(3):
        if await spare_store.take("release", record) is not None:
            released += 1
    assert released <= 1
    assert not await spare_store.exists("release", record)


async def test_maxmemory_refuses_writes_and_evicts_nothing(
    tmp_path: Path, key_layer: KeyLayer
) -> None:
    with RedisServer(tmp_path / "redis", maxmemory="64mb") as server:
        with server.raw_client() as raw:
            used = int(raw.info("memory")["used_memory"])
            raw.config_set("maxmemory", used + 1024 * 1024)
            assert raw.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        store = make_store(server.url, key_layer, socket_timeout=FAULT_TIMEOUT)
        try:
            stored: list[str] = []
            with pytest.raises(StoreUnavailable) as caught:
                for index in range(1000):
                    record = f"s{index}"
                    await store.put("flow", record, os.urandom(32 * 1024), expire_at=soon(hours=1))
                    stored.append(record)
            assert "out of memory" in str(caught.value)
            assert 5 < len(stored) < 1000
            with pytest.raises(StoreUnavailable):  # a new session is refused too (case 42)
                await store.put_new("flow", "new", os.urandom(32 * 1024), expire_at=soon(hours=1))
            # Nothing was evicted: every earlier record is still there and opens.
            with server.raw_client() as raw:
                assert raw.dbsize() == len(stored)
                assert raw.info("stats")["evicted_keys"] == 0
            for record in stored:
                value = await store.get("flow", record)
                assert value is not None and len(value) == 32 * 1024
            # One-time reads still work when full (GETDEL frees memory).
            assert await store.take("flow", stored[0]) is not None
        finally:
            await store.aclose()


async def test_ping_and_scan(store: SealedStore) -> None:
    await store.ping()
    record = unique("par")
    await store.put_json("par", record, json.loads('{"a": 1}'), expire_at=soon(seconds=90))
    found = {name: ttl async for name, ttl in store.scan_all()}
    assert 0 < found[store.key("par", record)] <= 90_000
    assert repr(store).startswith("SealedStore(namespace='sl'")


# -- the embedded launcher ---------------------------------------------------------------


def test_embedded_server_is_configured_for_the_broker(redis_server: RedisServer) -> None:
    with redis_server.raw_client() as raw:
        config = raw.config_get("*")
    assert config["save"] == ""
    assert config["appendonly"] == "no"
    assert config["maxmemory"] == str(64 * 1024 * 1024)
    assert config["maxmemory-policy"] == "noeviction"
    assert config["bind"] == "127.0.0.1"
    assert config["requirepass"]
    assert (redis_server.directory / "redis.conf").stat().st_mode & 0o777 == 0o600
    assert config["requirepass"] not in repr(redis_server)
    # Without the password, nothing is readable.
    anonymous = redis.Redis(
        host="127.0.0.1", port=redis_server.port, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()


def test_embedded_without_redis_server_is_a_config_error(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", executable="redis-server-not-installed")
    with pytest.raises(ConfigError, match="not installed"):
        server.start()


def test_redis_url_for_prefers_the_configured_url(tmp_path: Path) -> None:
    configured = Settings(state_dir=tmp_path, redis_url="redis://redis.internal:6379/2")
    with redis_url_for(configured) as url:
        assert url == "redis://redis.internal:6379/2"
    assert not (tmp_path / "redis").exists()
    with (
        redis_url_for(Settings(state_dir=tmp_path)) as url,
        redis.Redis.from_url(url, socket_timeout=2) as client,
    ):
        assert client.ping()
    assert (tmp_path / "redis").is_dir()


async def test_expire_by_brings_the_end_forward_only(store: SealedStore, raw: redis.Redis) -> None:
    record = unique("release")
    key = store.key("release", record)
    await store.put("release", record, b"approved", expire_at=soon(minutes=10))
    sealed = raw.get(key)
    # Earlier: applied, and the value is not rewritten (same sealed bytes).
    assert await store.expire_by("release", record, soon(minutes=2))
    assert 60_000 < int(raw.pttl(key)) <= 120_000
    assert raw.get(key) == sealed
    # Later than its end now: refused, the end stays.
    assert not await store.expire_by("release", record, soon(minutes=9))
    assert int(raw.pttl(key)) <= 120_000
    # Gone: False, nothing created.
    assert not await store.expire_by("release", unique("gone"), soon(minutes=1))
    with pytest.raises(ValueError):
        await store.expire_by("release", record, soon(minutes=-1))
