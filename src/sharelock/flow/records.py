"""The typed access to the broker's Redis records (`Records`): put, get, take, compare-and-set
with records written or erased along, a flow's end in one script. What each kind of record is
(its key, type and lifetime) is `sharelock.flow.kinds`, re-exported here for the modules that
use both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sharelock.clock import Clock
from sharelock.config import Retention
from sharelock.flow.kinds import (
    ASSERTION_JTI,
    CODE,
    CODE_USED,
    COLLECTED,
    DELIVERING,
    DPOP_JTI,
    ENVELOPE_SEEN,
    FLOW,
    IDENTITY,
    IDENTITY_DOCUMENT,
    IDENTITY_FRAMES,
    IDENTITY_HELD,
    KINDS,
    MAINTENANCE_OFFER,
    PUSHED_REQUEST,
    RELEASE,
    REMEMBER_OFFER,
    RESUME,
    RIGHTS_PENDING,
    RIGHTS_PROOF,
    TOKEN,
    Kind,
    by_digest,
    by_flow_id,
    handle_in_slot_of,
    lifetimes,
)
from sharelock.store import SealedStore, Versioned, tag_of

T = TypeVar("T")

__all__ = [
    "ASSERTION_JTI",
    "CODE",
    "CODE_USED",
    "COLLECTED",
    "DELIVERING",
    "DPOP_JTI",
    "ENVELOPE_SEEN",
    "FLOW",
    "IDENTITY",
    "IDENTITY_DOCUMENT",
    "IDENTITY_FRAMES",
    "IDENTITY_HELD",
    "KINDS",
    "MAINTENANCE_OFFER",
    "PUSHED_REQUEST",
    "RELEASE",
    "REMEMBER_OFFER",
    "RESUME",
    "RIGHTS_PENDING",
    "RIGHTS_PROOF",
    "TOKEN",
    "Erase",
    "Kind",
    "Loaded",
    "Put",
    "Records",
    "by_digest",
    "by_flow_id",
    "handle_in_slot_of",
    "lifetimes",
]


def _one_slot(items: Sequence[Put[Any] | Kind[Any]], store_ids: Sequence[str]) -> None:
    """`ValueError` unless the records (each a kind or a `Put`, and its store id) share one slot
    tag: Redis Cluster would refuse their script, and a standalone Redis would not say so."""
    first = tag_of(store_ids[0])
    for item, store_id in zip(items, store_ids, strict=True):
        if tag_of(store_id) != first:
            raise ValueError(f"{_name(item)} is not in the slot of the {_name(items[0])}")


def _name(item: Put[Any] | Kind[Any]) -> str:
    return item.kind.name if isinstance(item, Put) else item.name


@dataclass(frozen=True, slots=True, repr=False)
class Put(Generic[T]):
    """A record written along with an update (`Records.update_loaded`), expiring as `put`
    would write it."""

    kind: Kind[T]
    record_id: str
    value: T
    until: float | None = None

    def __repr__(self) -> str:
        return f"Put({self.kind.name})"


@dataclass(frozen=True, slots=True)
class Erase:
    """A record deleted along with an update (`Records.update_loaded`)."""

    kind: Kind[Any]
    record_id: str


@dataclass(frozen=True, slots=True, repr=False)
class Loaded(Generic[T]):
    """A record as read or last written, with its stored version: `Records.update_loaded`
    compares and sets against it without reading the record again."""

    value: T
    version: Versioned

    def __repr__(self) -> str:
        return "Loaded()"


class Records:
    """Typed, lifetime-capped access to the sealed store. Every expiry is absolute, computed
    from the injected clock, and never later than the kind's lifetime."""

    def __init__(self, store: SealedStore, retention: Retention, clock: Clock) -> None:
        self.store = store
        self.retention = retention
        self.clock = clock

    def __repr__(self) -> str:
        return f"Records({self.store!r})"

    def expire_at(self, kind: Kind[Any], until: float | None = None) -> datetime:
        """When a record written now expires: at `until` if given, never past its lifetime."""
        longest = self.clock.now() + kind.lifetime(self.retention).total_seconds()
        moment = longest if until is None else min(until, longest)
        return datetime.fromtimestamp(moment, UTC)

    async def put(
        self, kind: Kind[T], record_id: str, value: T, *, until: float | None = None
    ) -> None:
        await self.store.put(
            kind.name,
            kind.store_id(record_id),
            kind.dump(value),
            expire_at=self.expire_at(kind, until),
        )

    async def put_new(
        self, kind: Kind[T], record_id: str, value: T, *, until: float | None = None
    ) -> bool:
        """Write only if no record has this id (SET NX); False if one does."""
        return await self.store.put_new(
            kind.name,
            kind.store_id(record_id),
            kind.dump(value),
            expire_at=self.expire_at(kind, until),
        )

    async def put_all(self, puts: Sequence[Put[Any]]) -> None:
        """Write records that must exist together in one script, all or none (records of one
        slot: one flow's)."""
        ids = [put.kind.store_id(put.record_id) for put in puts]
        _one_slot(puts, ids)
        await self.store.put_all(
            [
                (
                    put.kind.name,
                    store_id,
                    put.kind.dump(put.value),
                    self.expire_at(put.kind, put.until),
                )
                for put, store_id in zip(puts, ids, strict=True)
            ]
        )

    async def get(self, kind: Kind[T], record_id: str) -> T | None:
        raw = await self.store.get(kind.name, kind.store_id(record_id))
        return None if raw is None else kind.load(raw)

    async def get_loaded(self, kind: Kind[T], record_id: str) -> Loaded[T] | None:
        """`get`, keeping the version read (for `update_loaded`)."""
        version = await self.store.get_versioned(kind.name, kind.store_id(record_id))
        return None if version is None else Loaded(kind.load(version.value), version)

    async def take(self, kind: Kind[T], record_id: str) -> T | None:
        """Read and delete in one step (GETDEL): one caller gets it, ever."""
        raw = await self.store.take(kind.name, kind.store_id(record_id))
        return None if raw is None else kind.load(raw)

    async def put_indexed(
        self,
        kind: Kind[T],
        record_id: str,
        value: T,
        *,
        until: float | None = None,
        index: str,
        member: str,
        deadline: datetime,
    ) -> None:
        """`put`, and `member` scored at `deadline` in the expiry `index`, in one script (of
        one slot: a flow's record and its index shard, `expiry.index_of`)."""
        await self.store.put_indexed(
            kind.name,
            kind.store_id(record_id),
            kind.dump(value),
            expire_at=self.expire_at(kind, until),
            index=index,
            member=member,
            deadline=deadline,
        )

    async def end(self, records: Sequence[tuple[Kind[Any], str]], index: str, member: str) -> None:
        """Delete `records` and remove `member` from the expiry `index`, in one script: all
        of one slot (one flow's records and its index shard, `expiry.index_of`)."""
        await self.store.delete_with_index(
            [(kind.name, kind.store_id(record_id)) for kind, record_id in records], index, member
        )

    async def shorten(self, kind: Kind[Any], record_id: str, *, until: float) -> bool:
        """End a record at `until` if that is earlier than its end now, without rewriting it
        (nothing is sealed again); False if it no longer exists or already ends earlier."""
        return await self.store.expire_by(
            kind.name, kind.store_id(record_id), self.expire_at(kind, until)
        )

    async def hand_over(
        self,
        records: Sequence[tuple[Kind[Any], str]],
        successor: tuple[Kind[T], str, T],
        index: str,
        member: str,
    ) -> bool:
        """If the first of `records` exists: delete them all and write `successor` (its kind's
        full lifetime), moving `member` of the expiry `index` to the successor's end, in one
        script (`SealedStore.hand_over`). False, nothing changed, if it is gone: one of
        concurrent callers wins."""
        kind, record_id, value = successor
        return await self.store.hand_over(
            [(k.name, k.store_id(i)) for k, i in records],
            (kind.name, kind.store_id(record_id), kind.dump(value)),
            expire_at=self.expire_at(kind),
            index=index,
            member=member,
        )

    async def delete(self, kind: Kind[Any], *record_ids: str) -> int:
        return await self.delete_all([(kind, record_id) for record_id in record_ids])

    async def delete_all(self, records: Sequence[tuple[Kind[Any], str]]) -> int:
        """Delete records of several kinds with one command; returns how many existed."""
        return await self.store.delete_records(
            [(kind.name, kind.store_id(record_id)) for kind, record_id in records]
        )

    async def exists(self, kind: Kind[Any], record_id: str) -> bool:
        return await self.store.exists(kind.name, kind.store_id(record_id))

    async def expires(self, kind: Kind[Any], record_id: str) -> datetime | None:
        return await self.store.expires_at(kind.name, kind.store_id(record_id))

    async def update(
        self, kind: Kind[T], record_id: str, change: Callable[[T], T | None]
    ) -> T | None:
        """Compare-and-set (`SealedStore.update`), keeping the record's expiry: `change`
        may run several times and must have no side effects."""
        updated = await self.update_loaded(kind, record_id, change)
        return None if updated is None else updated.value

    async def update_loaded(
        self,
        kind: Kind[T],
        record_id: str,
        change: Callable[[T], T | None],
        *,
        known: Loaded[T] | None = None,
        along: Sequence[Put[Any] | Erase] = (),
    ) -> Loaded[T] | None:
        """`update`, tried first against `known` (the record as the caller read or last wrote
        it) without reading it again; read again only if it changed meanwhile or `change`
        refuses `known`. `along`: records written or deleted in the same script, only if the
        update writes (records of the same slot: one flow's). Returns the record as now
        stored, with its version."""
        if not kind.json:
            raise TypeError(f"{kind.name} records are not JSON documents")
        store_id = kind.store_id(record_id)
        writes: list[tuple[str, str, bytes, datetime]] = []
        deletes: list[tuple[str, str]] = []
        for other in along:
            other_id = other.kind.store_id(other.record_id)
            _one_slot([kind, other.kind], [store_id, other_id])
            if isinstance(other, Put):
                expire_at = self.expire_at(other.kind, other.until)
                writes.append((other.kind.name, other_id, other.kind.dump(other.value), expire_at))
            else:
                deletes.append((other.kind.name, other_id))

        def apply(raw: bytes) -> bytes | None:
            changed = change(kind.load(raw))
            return None if changed is None else kind.dump(changed)

        version = await self.store.update(
            kind.name,
            store_id,
            apply,
            known=None if known is None else known.version,
            writes=writes,
            deletes=deletes,
        )
        return None if version is None else Loaded(kind.load(version.value), version)
