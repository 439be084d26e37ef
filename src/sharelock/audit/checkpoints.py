"""Signed checkpoints of the audit chain.

The hash chain alone proves the rows are the ones written only as long as its head is
trusted: someone able to rewrite every row and the head could forge a consistent chain. A
checkpoint closes that gap: under the chain's lock it states the head (last id and hash), the
anchor (where the remaining chain starts) and, for a retention run, which rows were purged;
the statement is signed (ES256) with the HSM's signing key, which no database access can use.
Checkpoints are chained to each other by digest and never purged.

`verify_trail` (in `sharelock.audit.integrity`) checks the rows against the checkpoints.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, insert, select

from sharelock.audit.chain import canonical_time
from sharelock.audit.errors import AuditUnavailable
from sharelock.audit.jws import Signer, sign_compact
from sharelock.audit.trail import ChainHead, Purged, purge_locked, read_head
from sharelock.db import GENESIS_HASH, WRITE_LOCK, AuditCheckpointRow, database_errors

CHECKPOINT_TYP = "sharelock-audit-checkpoint"
Reason = Literal["manual", "retention", "scheduled"]
REASONS: tuple[Reason, ...] = ("manual", "retention", "scheduled")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: int
    at: datetime
    reason: str
    last_id: int
    last_hash: str
    anchor_id: int
    anchor_hash: str
    purged: int
    jws: str

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["at"] = self.at.isoformat()
        return values


def jws_digest(jws: str) -> str:
    """How a checkpoint names the one before it."""
    return hashlib.sha256(jws.encode("ascii")).hexdigest()


_COLUMNS = tuple(Checkpoint.__dataclass_fields__)


def _select() -> Any:
    return select(*(getattr(AuditCheckpointRow, name) for name in _COLUMNS))


def list_checkpoints(connection: Connection) -> list[Checkpoint]:
    """Every checkpoint, oldest first."""
    rows = connection.execute(_select().order_by(AuditCheckpointRow.id)).mappings()
    return [Checkpoint(**{name: row[name] for name in _COLUMNS}) for row in rows]


def read_checkpoints(engine: Engine) -> list[Checkpoint]:
    """`list_checkpoints` on a connection of its own; `AuditUnavailable` if it cannot."""
    with (
        database_errors(AuditUnavailable, "audit trail unavailable", connection_detail=True),
        engine.connect() as connection,
    ):
        return list_checkpoints(connection)


class Checkpointer:
    """Writes signed checkpoints (and purges with one) into the trail behind `engine`."""

    def __init__(self, engine: Engine, signer: Signer, issuer: str) -> None:
        self._writer = engine.execution_options(**{WRITE_LOCK: True})
        self._signer = signer
        self._issuer = issuer

    def checkpoint(self, reason: Reason = "manual") -> Checkpoint:
        """Sign the chain's current state."""
        checkpoint, _ = self._write(reason, before=None)
        return checkpoint

    def purge(self, before: datetime) -> tuple[Checkpoint, Purged | None]:
        """Delete the rows older than `before` (as `AuditTrail.purge`) and sign a checkpoint
        naming them, in one transaction: if the HSM cannot sign, nothing is deleted."""
        return self._write("retention", before=before)

    def _write(self, reason: Reason, before: datetime | None) -> tuple[Checkpoint, Purged | None]:
        if reason not in REASONS:
            raise ValueError(f"reason: one of {REASONS}")
        with (
            database_errors(AuditUnavailable, "audit trail unavailable", connection_detail=True),
            self._writer.begin() as connection,
        ):
            head = read_head(connection, lock=True)
            purged = None if before is None else purge_locked(connection, head, before)
            if purged is not None:
                head = read_head(connection)
            checkpoint = self._sign(connection, head, reason, purged)
            connection.execute(insert(AuditCheckpointRow).values(**asdict(checkpoint)))
            return checkpoint, purged

    def _sign(
        self, connection: Connection, head: ChainHead, reason: Reason, purged: Purged | None
    ) -> Checkpoint:
        previous = connection.execute(
            select(AuditCheckpointRow.id, AuditCheckpointRow.jws)
            .order_by(AuditCheckpointRow.id.desc())
            .limit(1)
        ).one_or_none()
        new_id = 1 if previous is None else previous.id + 1
        at = datetime.now(UTC)
        payload = checkpoint_payload(
            issuer=self._issuer,
            seq=new_id,
            at=at,
            reason=reason,
            head=head,
            purged=purged,
            prev=GENESIS_HASH if previous is None else jws_digest(previous.jws),
        )
        jws = sign_compact(self._signer, payload, CHECKPOINT_TYP)
        return Checkpoint(
            id=new_id,
            at=at,
            reason=reason,
            last_id=head.last_id,
            last_hash=head.last_hash,
            anchor_id=head.anchor_id,
            anchor_hash=head.anchor_hash,
            purged=0 if purged is None else purged.rows,
            jws=jws,
        )


def checkpoint_payload(
    *,
    issuer: str,
    seq: int,
    at: datetime,
    reason: str,
    head: ChainHead,
    purged: Purged | None,
    prev: str,
) -> dict[str, Any]:
    """What a checkpoint signs."""
    return {
        "iss": issuer,
        "seq": seq,
        "iat": int(at.timestamp()),
        "at": canonical_time(at),
        "reason": reason,
        "head": {"id": head.last_id, "hash": head.last_hash},
        "anchor": {"id": head.anchor_id, "hash": head.anchor_hash},
        "purged": None
        if purged is None
        else {"from_id": purged.from_id, "through_id": purged.through_id, "rows": purged.rows},
        "prev": prev,
    }
