"""The full verification of the trail: the hash chain, plus the signed checkpoints.

`verify_chain` proves the remaining rows link up from the anchor to the head. The checkpoints
add what the rows alone cannot show:

- each checkpoint's ES256 signature verifies with the broker's signing key, and each names
  the digest of the one before it (`bad_signature`, `checkpoint_altered`);
- every head a checkpoint saw is still there, with the same hash: rows rewritten and
  re-chained after it was signed are `altered`, rows cut off the end are `deleted`;
- the chain's anchor moved only by purges that a checkpoint recorded: rows removed any
  other way, even with the anchor moved to hide it, are `deleted`.

Problems name the rows (and checkpoint) concerned. Messages are built from ids only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select

from sharelock.audit.checkpoints import CHECKPOINT_TYP, Checkpoint, jws_digest, list_checkpoints
from sharelock.audit.errors import AuditUnavailable
from sharelock.audit.jws import BadSignature, verify_compact
from sharelock.audit.trail import ChainHead, read_head
from sharelock.audit.verify import Progress, VerifyReport, snapshot, walk_chain
from sharelock.db import GENESIS_HASH, AuditEventRow, database_errors


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str  # altered, deleted, inserted, reordered, bad_signature, checkpoint_altered
    first_id: int | None
    last_id: int | None
    checkpoint_id: int | None
    message: str


@dataclass(frozen=True, slots=True)
class TrailReport:
    chain: VerifyReport
    anchor_id: int
    checkpoints_checked: int
    attested_through: int  # the last row id a valid checkpoint vouches for
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems

    def to_json(self) -> dict[str, Any]:
        first = self.problems[0] if self.problems else None
        return {
            "ok": self.ok,
            "rows_checked": self.chain.rows_checked,
            "first_bad_id": first.first_id if first else None,
            "reason": first.reason if first else None,
            "last_id": self.chain.last_id,
            "last_hash": self.chain.last_hash,
            "anchor_id": self.anchor_id,
            "checkpoints_checked": self.checkpoints_checked,
            "attested_through_id": self.attested_through,
            "problems": [asdict(p) for p in self.problems],
        }


def verify_trail(
    engine: Engine, jwk: Mapping[str, Any] | None, on_progress: Progress | None = None
) -> TrailReport:
    """Check the chain and the checkpoints in one snapshot. `jwk` is the broker's signing
    keyring, kid -> public JWK of every signing key it ever used (`KeyLayer.signature_keyring()`;
    one JWK also does): each checkpoint is checked with the key its header names, so the
    checkpoints signed before a rotation stay verifiable. Without keys no checkpoint can be
    trusted. Raises
    `AuditUnavailable` if the database cannot be read."""
    with (
        database_errors(AuditUnavailable, "audit trail unavailable"),
        snapshot(engine) as connection,
    ):
        chain = walk_chain(connection, on_progress)
        head = read_head(connection)
        checkpoints = list_checkpoints(connection)
        problems: list[Problem] = []
        if not chain.ok:
            problems.append(
                Problem(
                    str(chain.reason),
                    chain.first_bad_id,
                    chain.first_bad_id,
                    None,
                    f"row {chain.first_bad_id}: {chain.reason}",
                )
            )
        check = _CheckpointWalk(connection, head, jwk)
        for checkpoint in checkpoints:
            check.visit(checkpoint)
        check.finish()
        problems.extend(check.problems)
    return TrailReport(chain, head.anchor_id, len(checkpoints), check.attested, tuple(problems))


class _CheckpointWalk:
    def __init__(self, connection: Connection, head: ChainHead, jwk: Mapping[str, Any] | None):
        self.connection = connection
        self.head = head
        self.jwk = jwk
        self.problems: list[Problem] = []
        self.prev_digest = GENESIS_HASH
        self.prev_seq = 0
        self.prev_last = 0
        self.anchor = (0, GENESIS_HASH)
        self.attested = 0

    def _problem(self, reason: str, first: int | None, last: int | None, cp: int, why: str) -> None:
        self.problems.append(Problem(reason, first, last, cp, f"checkpoint {cp}: {why}"))

    def visit(self, cp: Checkpoint) -> None:
        payload = self._payload(cp)
        self.prev_digest = jws_digest(cp.jws)
        self.prev_seq = cp.id
        if payload is None:
            return
        self._check_anchor(cp, payload)
        self._check_head(cp, payload["head"]["id"], payload["head"]["hash"])
        self.prev_last = payload["head"]["id"]

    def _payload(self, cp: Checkpoint) -> dict[str, Any] | None:
        if self.jwk is None:
            self._problem("bad_signature", None, None, cp.id, "no signing key to check it with")
            return None
        try:
            payload = verify_compact(cp.jws, self.jwk, CHECKPOINT_TYP)
        except BadSignature as exc:
            self._problem("bad_signature", None, None, cp.id, f"signature rejected ({exc})")
            return None
        if payload.get("seq") != cp.id or cp.id != self.prev_seq + 1:
            self._problem(
                "checkpoint_altered", None, None, cp.id, "out of sequence (one was removed)"
            )
        elif payload.get("prev") != self.prev_digest:
            self._problem(
                "checkpoint_altered", None, None, cp.id, "does not follow the one before it"
            )
        mirrored = (cp.last_id, cp.last_hash, cp.anchor_id, cp.anchor_hash)
        signed = (
            payload["head"]["id"],
            payload["head"]["hash"],
            payload["anchor"]["id"],
            payload["anchor"]["hash"],
        )
        if mirrored != signed:
            self._problem(
                "checkpoint_altered", None, None, cp.id, "its columns differ from what was signed"
            )
        return payload

    def _check_anchor(self, cp: Checkpoint, payload: Mapping[str, Any]) -> None:
        anchor = (payload["anchor"]["id"], payload["anchor"]["hash"])
        if anchor != self.anchor:
            purged = payload.get("purged")
            recorded = (
                isinstance(purged, dict)
                and purged.get("from_id") == self.anchor[0] + 1
                and purged.get("through_id") == anchor[0]
            )
            if not recorded:
                self._problem(
                    "deleted",
                    self.anchor[0] + 1,
                    anchor[0],
                    cp.id,
                    f"rows {self.anchor[0] + 1} to {anchor[0]} were removed by no recorded purge",
                )
        self.anchor = anchor

    def _check_head(self, cp: Checkpoint, last_id: int, last_hash: str) -> None:
        head = self.head
        if last_id > head.last_id:
            self._problem(
                "deleted",
                head.last_id + 1,
                last_id,
                cp.id,
                f"rows {head.last_id + 1} to {last_id} it saw are gone",
            )
            return
        if last_id > head.anchor_id:
            stored = self.connection.scalar(
                select(AuditEventRow.row_hash).where(AuditEventRow.id == last_id)
            )
        elif last_id == head.anchor_id:
            stored = head.anchor_hash
        else:
            self.attested = max(self.attested, last_id)
            return  # purged since; the anchor check covers it
        if stored != last_hash:
            first = max(self.prev_last, head.anchor_id) + 1
            self._problem(
                "altered",
                first,
                last_id,
                cp.id,
                f"rows {first} to {last_id} were rewritten after it was signed",
            )
            return
        self.attested = max(self.attested, last_id)

    def finish(self) -> None:
        head = self.head
        if head.anchor_id < self.anchor[0]:
            self.problems.append(
                Problem("altered", None, None, None, "the chain's anchor was moved back")
            )
        elif (head.anchor_id, head.anchor_hash) != self.anchor:
            first = self.anchor[0] + 1
            self.problems.append(
                Problem(
                    "deleted",
                    first,
                    head.anchor_id,
                    None,
                    f"rows {first} to {head.anchor_id} were removed without a signed checkpoint",
                )
            )
