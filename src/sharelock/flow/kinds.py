"""Every kind of record the broker keeps in Redis, on one page: its key, its type and its
lifetime. `KINDS` lists them all; `sharelock records` and `docs/privacy.md` print the table
from it (`lifetimes`). The typed access to them is `sharelock.flow.records.Records`.

A record's key is `sl:<kind>:<id>`; its value is sealed by the store (`sharelock.store`) with the
key name as additional data, so Redis holds nothing in clear. Each kind names the limit of
`Settings.retention` it lives by (or, for the markers that hold nothing personal, a fixed
lifetime): `Records.put` never lets a record outlive it, and a caller may only shorten it
(`until`: a code never outlives its session).

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
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

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
from sharelock.store import slot_tag, tagged

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
