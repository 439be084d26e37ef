"""`SealedStore`: the broker's TTL store, Redis holding only sealed values.

Lifetimes are absolute. Every write that creates a key sets its expiry as a Unix time (PXAT),
capped by the longest retention in the configuration; every write that changes a key keeps the
expiry it has (KEEPTTL) and only applies if the key still exists (XX). So no activity ever
extends a lifetime, and nothing is ever (re)created without one.

One-time reads are `GETDEL`: one Redis command, so of any number of concurrent readers exactly
one gets the value (see `vectors/redis_one_time_read_probe.json` for GET-then-DEL failing that).

What must happen together runs as one Lua script on keys of one hash slot (`keyspace.tagged`,
`scripts`): a compare-and-set, a record written with its expiry-index entry, records written
together, a flow's end with its index entry, popping due index entries. Scripts are atomic on
one server and on Redis Cluster alike, where MULTI and WATCH across connections are not
dependable, and each is one round trip.

A compare-and-set compares the sealed bytes the caller read (`get_versioned`, `Versioned`), so
an update of a value the caller already holds needs no second read: it is tried against them
first, and read again only if the record changed meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.commands.core import AsyncScript

from sharelock.config import Retention
from sharelock.keys import KeyLayer
from sharelock.store import scripts
from sharelock.store.client import (
    DEFAULT_SOCKET_TIMEOUT,
    RedisClient,
    connect,
    connect_endpoint,
    redis_errors,
)
from sharelock.store.endpoint import RedisEndpoint
from sharelock.store.errors import StoreError
from sharelock.store.keyspace import (
    DEFAULT_NAMESPACE,
    check_namespace,
    expiry_ms,
    key_name,
    redis_max_lifetime,
)
from sharelock.store.sealing import Sealer
from sharelock.store.versions import (
    DEFAULT_CAS_ATTEMPTS,
    Along,
    BytesUpdater,
    Versioned,
    Versions,
    binary,
)

JsonDocument = dict[str, Any]
Updater = Callable[[JsonDocument], JsonDocument | None]


def _dump(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _load(raw: bytes) -> JsonDocument:
    # Sealing authenticates what `_dump` wrote, so failing here means bytes written with `put`
    # were read with `get_json`: a caller's bug, reported without the bytes.
    try:
        document = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise StoreError("stored value is not a JSON object") from None
    if not isinstance(document, dict):
        raise StoreError("stored value is not a JSON object")
    return document


async def scan_all(client: RedisClient, namespace: str) -> AsyncIterator[tuple[str, int]]:
    """Every key of `namespace` with its remaining life in ms (-1: none), for tests and
    operators (e.g. to prove nothing outlives its limit). Keys expiring mid-scan are skipped."""
    check_namespace(namespace)
    with redis_errors("scan"):
        async for raw_key in client.scan_iter(match=f"{namespace}:*", count=500):
            ttl = await client.pttl(raw_key)
            if ttl != -2:
                yield raw_key.decode("utf-8", "replace"), ttl


class SealedStore:
    """Namespaced, sealed, expiring records in Redis. All methods are coroutines; Redis
    failures are `StoreUnavailable`, values that do not open are `SealError`."""

    def __init__(
        self,
        client: RedisClient,
        sealer: Sealer,
        *,
        max_lifetime: timedelta,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        if max_lifetime <= timedelta(0):
            raise ValueError("max_lifetime must be positive")
        self._client = client
        self._sealer = sealer
        self._max_lifetime = max_lifetime
        self._namespace = check_namespace(namespace)
        self._versions = Versions(client, sealer)
        self._delete_with_index = self._script(scripts.DELETE_WITH_INDEX)
        self._pop_due = self._script(scripts.POP_DUE)
        self._hand_over = self._script(scripts.HAND_OVER)
        self._put_indexed = self._script(scripts.PUT_INDEXED)
        self._put_all = self._script(scripts.PUT_ALL)

    def _script(self, source: str) -> AsyncScript:
        # EVALSHA, loading the script on NOSCRIPT (a restarted or promoted server).
        return self._client.register_script(source)

    @classmethod
    def from_url(
        cls,
        url: str,
        keys: KeyLayer,
        retention: Retention,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    ) -> SealedStore:
        """The broker's store: a fail-fast client for `url`, a `Sealer` on `keys`, and the
        expiry cap from the retention table."""
        client = connect(url, socket_timeout=socket_timeout)
        return cls._for_broker(client, keys, retention, namespace)

    @classmethod
    def for_endpoint(
        cls,
        endpoint: RedisEndpoint,
        keys: KeyLayer,
        retention: Retention,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    ) -> SealedStore:
        """As `from_url`, for a URL or Sentinels, with an ACL user and TLS
        (`connect_endpoint`)."""
        client = connect_endpoint(endpoint, socket_timeout=socket_timeout)
        return cls._for_broker(client, keys, retention, namespace)

    @classmethod
    def _for_broker(
        cls, client: RedisClient, keys: KeyLayer, retention: Retention, namespace: str
    ) -> SealedStore:
        return cls(
            client, Sealer(keys), max_lifetime=redis_max_lifetime(retention), namespace=namespace
        )

    def __repr__(self) -> str:
        return f"SealedStore(namespace={self._namespace!r}, sealer={self._sealer!r})"

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def client(self) -> RedisClient:
        """The Redis client, for companions that keep their own (non-personal) keys on the
        same server and pool: the rate limiter's counters."""
        return self._client

    @property
    def sealer(self) -> Sealer:
        return self._sealer

    @property
    def max_lifetime(self) -> timedelta:
        return self._max_lifetime

    def key(self, kind: str, record_id: str) -> str:
        """The Redis key name of a record (also the additional data its value is sealed to)."""
        return key_name(self._namespace, kind, record_id)

    def _expiry(self, expire_at: datetime) -> int:
        return expiry_ms(expire_at, datetime.now(UTC), self._max_lifetime)

    async def _seal(self, key: str, value: bytes) -> bytes:
        return await self._sealer.seal(value, key.encode("ascii"))

    async def _open(self, key: str, reply: bytes | str | None) -> bytes | None:
        sealed = binary(reply)
        if sealed is None:
            return None
        return await self._sealer.open(sealed, key.encode("ascii"))

    # -- bytes --------------------------------------------------------------------------

    async def put(self, kind: str, record_id: str, value: bytes, *, expire_at: datetime) -> None:
        """Write (or overwrite) a record that disappears at `expire_at`."""
        key = self.key(kind, record_id)
        pxat = self._expiry(expire_at)
        sealed = await self._seal(key, value)
        with redis_errors(f"put {kind}"):
            await self._client.set(key, sealed, pxat=pxat)

    async def put_new(
        self, kind: str, record_id: str, value: bytes, *, expire_at: datetime
    ) -> bool:
        """Write a record only if none exists under that id (SET NX); False if one does."""
        key = self.key(kind, record_id)
        pxat = self._expiry(expire_at)
        sealed = await self._seal(key, value)
        with redis_errors(f"put_new {kind}"):
            return bool(await self._client.set(key, sealed, pxat=pxat, nx=True))

    async def get(self, kind: str, record_id: str) -> bytes | None:
        key = self.key(kind, record_id)
        with redis_errors(f"get {kind}"):
            sealed = await self._client.get(key)
        return await self._open(key, sealed)

    async def get_versioned(self, kind: str, record_id: str) -> Versioned | None:
        """As `get`, with the sealed bytes read: `update(..., known=)` compares them."""
        return await self._versions.get(self.key(kind, record_id), f"get {kind}")

    async def take(self, kind: str, record_id: str) -> bytes | None:
        """Read and delete in one atomic step (GETDEL): one caller gets the value, ever.

        If Redis times out, the value may or may not be deleted, but it is not returned; a retry
        then gets it at most once. If the value does not open (`SealError`), it is gone anyway:
        the store fails closed."""
        key = self.key(kind, record_id)
        with redis_errors(f"take {kind}"):
            sealed = await self._client.getdel(key)
        return await self._open(key, sealed)

    async def put_indexed(
        self,
        kind: str,
        record_id: str,
        value: bytes,
        *,
        expire_at: datetime,
        index: str,
        member: str,
        deadline: datetime,
    ) -> None:
        """`put`, and score `member` in the expiry `index` at `deadline`, in one script: the
        record never exists without its index entry. On a cluster both carry one slot tag."""
        key = self.key(kind, record_id)
        pxat = self._expiry(expire_at)
        sealed = await self._seal(key, value)
        with redis_errors(f"put {kind}"):
            await self._put_indexed(
                keys=[key, self.key("index", index)],
                args=[sealed, pxat, member, deadline.timestamp()],
            )

    async def put_all(self, records: Sequence[tuple[str, str, bytes, datetime]]) -> None:
        """Write records (kind, id, value, expiry) in one script: all of them or none. On a
        cluster all carry one slot tag."""
        keys = [self.key(kind, record_id) for kind, record_id, _, _ in records]
        args: list[bytes | int] = []
        for key, (_, _, value, expire_at) in zip(keys, records, strict=True):
            args += [await self._seal(key, value), self._expiry(expire_at)]
        with redis_errors("put records"):
            await self._put_all(keys=keys, args=args)

    async def hand_over(
        self,
        records: Sequence[tuple[str, str]],
        successor: tuple[str, str, bytes],
        *,
        expire_at: datetime,
        index: str,
        member: str,
    ) -> bool:
        """If the first of `records` (kind, id) exists: delete them all, write `successor`
        (kind, id, value) sealed and expiring at `expire_at`, and move `member` of `index` to
        that deadline, in one script. False, and nothing changed, if it no longer exists: of
        concurrent callers exactly one gets True. On a cluster all keys carry one slot tag."""
        kind, record_id, value = successor
        key = self.key(kind, record_id)
        pxat = self._expiry(expire_at)
        sealed = await self._seal(key, value)
        keys = [self.key(k, i) for k, i in records]
        with redis_errors(f"hand over to {kind}"):
            done = await self._hand_over(
                keys=[*keys, key, self.key("index", index)],
                args=[sealed, pxat, member, expire_at.timestamp()],
            )
        return bool(done)

    async def delete_with_index(
        self, records: Sequence[tuple[str, str]], index: str, member: str
    ) -> None:
        """Delete `records` (kind, id) and remove `member` from `index` in one script: a
        record's end and its index entry's removal never part ways. On a cluster all of them
        must carry one slot tag (Redis refuses the script otherwise)."""
        keys = [self.key(kind, record_id) for kind, record_id in records]
        with redis_errors("delete records"):
            await self._delete_with_index(keys=[*keys, self.key("index", index)], args=[member])

    async def replace(self, kind: str, record_id: str, value: bytes) -> bool:
        """Overwrite an existing record, keeping its expiry (SET XX KEEPTTL); False if it no
        longer exists, in which case nothing is written."""
        key = self.key(kind, record_id)
        sealed = await self._seal(key, value)
        with redis_errors(f"replace {kind}"):
            return bool(await self._client.set(key, sealed, xx=True, keepttl=True))

    async def expire_by(self, kind: str, record_id: str, expire_at: datetime) -> bool:
        """Bring a record's end forward to `expire_at` (PEXPIREAT … LT), never later than it
        already is; the value is not rewritten. False if the record no longer exists (or
        already ends earlier)."""
        key = self.key(kind, record_id)
        pxat = self._expiry(expire_at)
        with redis_errors(f"expire {kind}"):
            return bool(await self._client.pexpireat(key, pxat, lt=True))

    async def delete(self, kind: str, *record_ids: str) -> int:
        """Delete records of one kind; returns how many existed."""
        return await self.delete_records([(kind, record_id) for record_id in record_ids])

    async def delete_records(self, records: Sequence[tuple[str, str]]) -> int:
        """Delete records of several kinds (kind, id) with one command; returns how many
        existed."""
        if not records:
            return 0
        keys = [self.key(kind, record_id) for kind, record_id in records]
        with redis_errors("delete records"):
            return int(await self._client.delete(*keys))

    async def exists(self, kind: str, record_id: str) -> bool:
        key = self.key(kind, record_id)
        with redis_errors(f"exists {kind}"):
            return bool(await self._client.exists(key))

    async def ttl_ms(self, kind: str, record_id: str) -> int | None:
        """Remaining life in milliseconds; None if the record does not exist."""
        key = self.key(kind, record_id)
        with redis_errors(f"ttl {kind}"):
            ttl = int(await self._client.pttl(key))
        return None if ttl == -2 else ttl

    async def expires_at(self, kind: str, record_id: str) -> datetime | None:
        """The absolute expiry (PEXPIRETIME, Redis >= 7.0); None if the record does not exist
        or (never written by this store) has no expiry."""
        key = self.key(kind, record_id)
        with redis_errors(f"expiretime {kind}"):
            at_ms = int(await self._client.pexpiretime(key))
        return None if at_ms < 0 else datetime.fromtimestamp(at_ms / 1000, UTC)

    # -- JSON documents -----------------------------------------------------------------

    async def put_json(
        self, kind: str, record_id: str, document: Mapping[str, Any], *, expire_at: datetime
    ) -> None:
        await self.put(kind, record_id, _dump(document), expire_at=expire_at)

    async def put_new_json(
        self, kind: str, record_id: str, document: Mapping[str, Any], *, expire_at: datetime
    ) -> bool:
        return await self.put_new(kind, record_id, _dump(document), expire_at=expire_at)

    async def get_json(self, kind: str, record_id: str) -> JsonDocument | None:
        raw = await self.get(kind, record_id)
        return None if raw is None else _load(raw)

    async def take_json(self, kind: str, record_id: str) -> JsonDocument | None:
        raw = await self.take(kind, record_id)
        return None if raw is None else _load(raw)

    async def replace_json(self, kind: str, record_id: str, document: Mapping[str, Any]) -> bool:
        return await self.replace(kind, record_id, _dump(document))

    async def update_json(
        self,
        kind: str,
        record_id: str,
        fn: Updater,
        *,
        attempts: int = DEFAULT_CAS_ATTEMPTS,
    ) -> JsonDocument | None:
        """Compare-and-swap a small JSON document (`update`): `fn(current)` returns the new
        document, or None to leave it unchanged.

        Returns the document now stored, or None if the record does not exist (or expired
        during the update). Raises `StoreConflict` after `attempts` lost races."""

        def apply(raw: bytes) -> bytes | None:
            updated = fn(_load(raw))
            return None if updated is None else _dump(updated)

        result = await self.update(kind, record_id, apply, attempts=attempts)
        return None if result is None else _load(result.value)

    async def update(
        self,
        kind: str,
        record_id: str,
        fn: BytesUpdater,
        *,
        attempts: int = DEFAULT_CAS_ATTEMPTS,
        known: Versioned | None = None,
        writes: Sequence[tuple[str, str, bytes, datetime]] = (),
        deletes: Sequence[tuple[str, str]] = (),
    ) -> Versioned | None:
        """Compare-and-swap a record's value: `fn(current)` returns the new value (or None to
        leave it unchanged), and it is written only if nobody wrote the key in between (a
        script compares the sealed bytes read before), keeping its expiry. `fn` may run
        several times, so it must not have side effects; an exception from it aborts the
        update and propagates.

        `known`: the version the caller already holds (`get_versioned`, or this method's
        last answer), tried first without reading the record; if `fn` refuses it or the
        record changed, the update goes on as without it, so `fn` always decides on what is
        stored. `writes` (kind, id, value, expiry) and `deletes` (kind, id) happen in the same
        script, only if the record is written; on a cluster they carry its slot tag.

        Returns the version now stored, or None if the record does not exist (or expired
        during the update). Raises `StoreConflict` after `attempts` lost races."""
        along = [Along(self.key(k, i)) for k, i in deletes]
        for other_kind, other_id, value, expire_at in writes:
            other = self.key(other_kind, other_id)
            along.append(Along(other, await self._seal(other, value), self._expiry(expire_at)))
        return await self._versions.update(
            self.key(kind, record_id),
            fn,
            operation=f"update {kind}",
            attempts=attempts,
            known=known,
            along=along,
        )

    # -- expiry index -------------------------------------------------------------------
    # A sorted set of (member, deadline) so that whatever Redis expires silently can still be
    # accounted for (the audit trail's "data expired" rows). Members are identifiers the
    # caller chooses and must not be personal: they are stored in clear.

    async def index_add(self, index: str, member: str, deadline: datetime) -> None:
        key = self.key("index", index)
        with redis_errors("index add"):
            await self._client.zadd(key, {member: deadline.timestamp()})

    async def index_remove(self, index: str, member: str) -> None:
        with redis_errors("index remove"):
            await self._client.zrem(self.key("index", index), member)

    async def index_pop_due(self, index: str, now: datetime, limit: int = 500) -> list[str]:
        """Members whose deadline has passed, each returned to exactly one caller (read and
        removed in one script), so several broker processes can sweep at once without double
        counting."""
        key = self.key("index", index)
        with redis_errors("index pop"):
            due = await self._pop_due(keys=[key], args=[now.timestamp(), limit])
        return [raw.decode() if isinstance(raw, bytes) else str(raw) for raw in due]

    # -- operations ---------------------------------------------------------------------

    async def ping(self) -> None:
        """Readiness: returns if Redis answers, `StoreUnavailable` otherwise."""
        with redis_errors("ping"):
            await self._client.ping()

    def scan_all(self, namespace: str | None = None) -> AsyncIterator[tuple[str, int]]:
        """Every key of this store's namespace (or another) with its remaining life in ms."""
        return scan_all(self._client, namespace or self._namespace)

    async def aclose(self) -> None:
        """Close the Redis connections and wipe the sealer's clear data keys."""
        try:
            await self._client.aclose()
        finally:
            self._sealer.close()
