"""Every kind of record the broker keeps in Redis, on one page: its key, its type and its
lifetime, and the typed access to them (`Records`).

A record's key is `sl:<kind>:<id>`; its value is sealed by the store (`sharelock.store`) with the
key name as additional data, so Redis holds nothing in clear. Each kind names the limit of
`Settings.retention` it lives by (or, for the markers that hold nothing personal, a fixed
lifetime): `Records.put` never lets a record outlive it, and a caller may only shorten it
(`until`: a code never outlives its session). `KINDS` lists them all; `sharelock records`
and `docs/privacy.md` print the table from it.

Ids are digests of bearer values (codes, tokens, handles: a copy of Redis gives nothing usable)
or the flow's random id. The only Redis value the store does not seal is the expiry index of
live flows (`sharelock.flow.expiry`), whose members are flow references and client ids.

Every record of one flow carries the flow's slot tag (`sharelock.store.slot_tag`), so on Redis
Cluster they share one hash slot with the flow's expiry-index shard and a delivery ends them in
one script. The tag comes from the id itself: the digest of the flow id for the flow's own
kinds, and the digest of the code or token for theirs, which the broker draws until it falls in
the flow's slot (`handle_in_slot_of`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from sharelock.clock import Clock
from sharelock.config import Retention
from sharelock.flow.record_types import (
    CollectedData,
    Delivering,
    HeldIdentity,
    IdentityImages,
    IdentityKept,
    MaintenanceOffer,
    Release,
    RememberOffer,
    RightsPending,
    RightsProof,
)
from sharelock.flow.state import FlowState
from sharelock.oauth import AuthorizationRequest, CodeGrant, CodeUse, TokenGrant, digest, new_handle
from sharelock.store import SealedStore, Versioned, slot_tag, tagged

T = TypeVar("T")


# -- kinds ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kind(Generic[T]):
    """One kind of Redis record."""

    name: str  # `sl:<name>:<id>`
    id_is: str  # what the id is, for people
    what: str  # what the value is, for people
    limit: str | timedelta  # a `Retention` field name, or a fixed lifetime (markers)
    dump: Callable[[T], bytes] = field(repr=False)
    load: Callable[[bytes], T] = field(repr=False)
    json: bool = True  # JSON documents may be updated in place (`Records.update`)
    # The slot tag of a record, from its id (None: the key hashes alone, like any key).
    slot: Callable[[str], str] | None = field(default=None, repr=False)

    def store_id(self, record_id: str) -> str:
        """The id the store keys this record by: `record_id`, in its flow's slot if any."""
        return record_id if self.slot is None else tagged(self.slot(record_id), record_id)

    def lifetime(self, retention: Retention) -> timedelta:
        if isinstance(self.limit, timedelta):
            return self.limit
        value: timedelta = getattr(retention, self.limit)
        return value


def _dumps(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _loads(raw: bytes) -> dict[str, Any]:
    document = json.loads(raw.decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


def _slot(store_id: str) -> str | None:
    """The slot tag a store id starts with, if any."""
    return store_id[1:3] if store_id.startswith("{") else None


def _one_slot(items: Sequence[Put[Any] | Kind[Any]], store_ids: Sequence[str]) -> None:
    """`ValueError` unless the records (each a kind or a `Put`, and its store id) share one slot
    tag: Redis Cluster would refuse their script, and a standalone Redis would not say so."""
    first = _slot(store_ids[0])
    for item, store_id in zip(items, store_ids, strict=True):
        if _slot(store_id) != first:
            raise ValueError(f"{_name(item)} is not in the slot of the {_name(items[0])}")


def _name(item: Put[Any] | Kind[Any]) -> str:
    return item.kind.name if isinstance(item, Put) else item.name


def by_flow_id(flow_id: str) -> str:
    """The slot tag of a flow, from its id."""
    return slot_tag(digest(flow_id))


def by_digest(hex_digest: str) -> str:
    """The slot tag of a record keyed by a digest (a code's, a token's, the flow reference)."""
    return slot_tag(hex_digest)


def handle_in_slot_of(flow_id: str) -> str:
    """A fresh 32-byte bearer handle (a code, a token) whose digest has the flow's slot tag: on
    average as many draws as there are tags, each a few microseconds; what it gives away of
    the handle (6 bits of 256) is public anyway, as the flow's tag."""
    tag = by_flow_id(flow_id)
    while True:
        handle = new_handle(32)
        if slot_tag(digest(handle)) == tag:
            return handle


def _dataclass_kind(
    cls: type[T],
    name: str,
    id_is: str,
    what: str,
    limit: str | timedelta,
    slot: Callable[[str], str] | None = None,
) -> Kind[T]:
    return Kind(
        name,
        id_is,
        what,
        limit,
        dump=lambda value: _dumps(asdict(value)),  # type: ignore[call-overload]
        load=lambda raw: cls(**_loads(raw)),
        slot=slot,
    )


def _bytes_kind(
    name: str,
    id_is: str,
    what: str,
    limit: str | timedelta,
    slot: Callable[[str], str] | None = None,
) -> Kind[bytes]:
    return Kind(name, id_is, what, limit, dump=bytes, load=bytes, json=False, slot=slot)


FLOW: Kind[FlowState] = Kind(
    "flow",
    "flow id",
    "the share's state: the partner's request (with what its checks ask about), status, the "
    "session cookie's digest",
    "session",
    dump=lambda flow: _dumps(flow.to_json()),
    load=lambda raw: FlowState.from_json(_loads(raw)),
    slot=by_flow_id,
)
RESUME = _bytes_kind(
    "resume",
    "flow id",
    "the data source's session, while it asks a one-time code",
    "session",
    by_flow_id,
)
COLLECTED = _dataclass_kind(
    CollectedData,
    "data",
    "flow id",
    "the collected data, awaiting review, and the answers to the partner's checks",
    "session",
    by_flow_id,
)
MAINTENANCE_OFFER = _dataclass_kind(
    MaintenanceOffer,
    "maintenance-offer",
    "flow id",
    "a failed collection's JWE, awaiting the answer to keeping it for maintenance",
    "session",
    by_flow_id,
)
REMEMBER_OFFER = _dataclass_kind(
    RememberOffer,
    "remember-offer",
    "flow id",
    "after a share, what would let an account re-sync the source (its device token, or the "
    "credential JWE as received), awaiting the answer to remembering it",
    "session",
    by_flow_id,
)
ENVELOPE_SEEN = _bytes_kind(
    "envelope-seen", "JWE digest", "a marker: this credential JWE was used once", "session"
)
RELEASE = _dataclass_kind(
    Release,
    "release",
    "flow reference",
    "the approved data, awaiting delivery: until the person continues to the partner, then "
    "the code's and the token's lives at most",
    "session",
    by_digest,
)
CODE = _dataclass_kind(
    CodeGrant,
    "code",
    "code digest",
    "what an authorization code grants",
    "authorization_code",
    by_digest,
)
CODE_USED = _dataclass_kind(
    CodeUse,
    "code-used",
    "code digest",
    "which token a redeemed code gave",
    "access_token",
    by_digest,
)
TOKEN = _dataclass_kind(
    TokenGrant, "token", "token digest", "what an access token grants", "access_token", by_digest
)
DELIVERING: Kind[Delivering] = Kind(
    "delivering",
    "token digest",
    "an approved share claimed by a delivery, until its audit row is written (then erased): "
    "for the partner's retry if the delivery failed in between",
    "access_token",
    dump=lambda held: _dumps({"grant": asdict(held.grant), "release": asdict(held.release)}),
    load=lambda raw: _delivering(_loads(raw)),
    slot=by_digest,
)


def _delivering(document: dict[str, Any]) -> Delivering:
    return Delivering(TokenGrant(**document["grant"]), Release(**document["release"]))


PUSHED_REQUEST: Kind[AuthorizationRequest] = Kind(
    "par",
    "request_uri digest",
    "a pushed authorization request (RFC 9126), with what its checks ask about",
    "pushed_request",
    dump=lambda request: _dumps(request.to_json()),
    load=lambda raw: AuthorizationRequest.from_json(_loads(raw)),
)
IDENTITY = _dataclass_kind(
    IdentityKept,
    "identity",
    "flow reference",
    "identity data kept for identity verification",
    "identity_data",
    by_digest,
)
# Identity verification in a share (`sharelock.flow.identity_check`): biometric data (GDPR
# Art. 9), kept only between capture and verification, which erases them; never past the
# session, and never past `identity_data` (72 h) whatever the session's length.
IDENTITY_HELD = _dataclass_kind(
    HeldIdentity,
    "identity-held",
    "flow id",
    "the names and birthdate the data source gave, until the identity verification compares "
    "the document with them",
    "identity_data",
    by_flow_id,
)
IDENTITY_DOCUMENT = _bytes_kind(
    "identity-document",
    "flow id",
    "the identity document's image JWE as received (biometric data), until the verification "
    "opens it",
    "identity_data",
    by_flow_id,
)
IDENTITY_FRAMES = _dataclass_kind(
    IdentityImages,
    "identity-frames",
    "flow id",
    "the live capture's image JWEs as received (biometric data), until the verification opens them",
    "identity_data",
    by_flow_id,
)
# An assertion lives at most 5 minutes plus the allowed clock skew (`oauth.client_auth`).
ASSERTION_JTI = _bytes_kind(
    "assertion-jti",
    "digest of client id and jti",
    "a marker: this client assertion was used once",
    timedelta(minutes=6),
)
# A proof is acceptable 60 s back and 10 s ahead (`sharelock.oauth.ProofWindow`): remembered
# a little longer than that.
DPOP_JTI = _bytes_kind(
    "dpop-jti",
    "digest of key thumbprint and jti",
    "a marker: this DPoP proof was used once",
    timedelta(minutes=2),
)
RIGHTS_PROOF = _dataclass_kind(
    RightsProof,
    "rights-proof",
    "proof handle digest",
    "a person's proof of control of a login at a data source",
    "rights_proof",
)
RIGHTS_PENDING = _dataclass_kind(
    RightsPending,
    "rights-pending",
    "pending handle digest",
    "a proof waiting for the data source's one-time code",
    "rights_proof",
)

KINDS: tuple[Kind[Any], ...] = (
    FLOW,
    RESUME,
    COLLECTED,
    MAINTENANCE_OFFER,
    REMEMBER_OFFER,
    ENVELOPE_SEEN,
    PUSHED_REQUEST,
    CODE,
    CODE_USED,
    RELEASE,
    TOKEN,
    DELIVERING,
    ASSERTION_JTI,
    DPOP_JTI,
    IDENTITY,
    IDENTITY_HELD,
    IDENTITY_DOCUMENT,
    IDENTITY_FRAMES,
    RIGHTS_PROOF,
    RIGHTS_PENDING,
)


def lifetimes(retention: Retention) -> list[dict[str, Any]]:
    """The table of kinds, for `sharelock records` and the docs."""
    return [
        {
            "kind": kind.name,
            "id": kind.id_is,
            "what": kind.what,
            "limit": kind.limit if isinstance(kind.limit, str) else None,
            "seconds": int(kind.lifetime(retention).total_seconds()),
        }
        for kind in KINDS
    ]


# -- typed access ----------------------------------------------------------------------------


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
        return await self.store.delete(kind.name, *map(kind.store_id, record_ids))

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
