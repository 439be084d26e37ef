"""Checking the trail: was any row altered, deleted, inserted or moved since it was written?

The walk goes through the rows in id order from the chain's anchor (the genesis, or the last
row removed by retention) and stops at the first problem:

- `altered`: a row's fields no longer give its stored hash, an id was renumbered, or the
  last row does not match the chain head;
- `deleted`: a row points to a predecessor that is gone, an id is missing, or the chain ends
  before the head;
- `inserted`: a row that nothing links to sits in the chain, or rows exist past the head;
- `reordered`: a row points to a predecessor that comes after it.

The hash chain proves the rows are the ones written, in that order, as long as the head is
trustworthy; someone able to rewrite every row *and* the head can forge a consistent chain.
Signed checkpoints close that gap (`sharelock.audit.checkpoints`; `verify_trail` in
`sharelock.audit.integrity` checks both).

All reads happen in one snapshot, so a concurrent writer cannot make a sound chain look
broken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, Engine, RowMapping, func, select

from sharelock.audit.chain import row_hash
from sharelock.audit.errors import AuditUnavailable
from sharelock.audit.records import select_records
from sharelock.audit.trail import ChainHead, read_head
from sharelock.db import AuditEventRow, database_errors

Reason = Literal["altered", "deleted", "inserted", "reordered"]
# Called now and then during a walk with (rows checked, rows expected), for progress bars.
Progress = Callable[[int, int], None]
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    rows_checked: int
    first_bad_id: int | None = None
    reason: Reason | None = None
    last_id: int = 0
    last_hash: str = ""


@dataclass(slots=True)
class _Walk:
    expected_id: int
    expected_prev: str
    checked: int = 0


def verify_chain(engine: Engine, on_progress: Progress | None = None) -> VerifyReport:
    """Walk the whole chain; `ok` is True when nothing was altered, deleted, inserted or
    reordered. Raises `AuditUnavailable` if the database cannot be read."""
    with (
        database_errors(AuditUnavailable, "audit trail unavailable"),
        snapshot(engine) as connection,
    ):
        return walk_chain(connection, on_progress)


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection inside one read transaction that sees one state of the trail."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


def _rows(connection: Connection) -> Iterator[RowMapping]:
    query = select_records().order_by(AuditEventRow.id).execution_options(yield_per=_BATCH)
    yield from connection.execute(query).mappings()


def walk_chain(connection: Connection, on_progress: Progress | None = None) -> VerifyReport:
    """The walk, on a connection from `snapshot`."""
    head = read_head(connection)
    expected = max(head.last_id - head.anchor_id, 0)
    walk = _Walk(expected_id=head.anchor_id + 1, expected_prev=head.anchor_hash)

    def bad(row_id: int, reason: Reason) -> VerifyReport:
        return VerifyReport(False, walk.checked, row_id, reason, head.last_id, head.last_hash)

    rows = _rows(connection)
    current = next(rows, None)
    while current is not None:
        following = next(rows, None)
        problem = _check(connection, head, walk, current, following)
        if problem is not None:
            return bad(*problem)
        walk.checked += 1
        if on_progress is not None and walk.checked % _BATCH == 0:
            on_progress(walk.checked, expected)
        walk.expected_id = current["id"] + 1
        walk.expected_prev = current["row_hash"]
        current = following
    if walk.expected_id - 1 < head.last_id:
        return bad(walk.expected_id, "deleted")  # the chain stops short of the head
    if walk.expected_prev != head.last_hash:
        return bad(head.last_id, "altered")
    if on_progress is not None:
        on_progress(walk.checked, expected)
    return VerifyReport(True, walk.checked, None, None, head.last_id, head.last_hash)


def _check(
    connection: Connection,
    head: ChainHead,
    walk: _Walk,
    row: RowMapping,
    following: RowMapping | None,
) -> tuple[int, Reason] | None:
    row_id: int = row["id"]
    if row_id < walk.expected_id:
        return row_id, "inserted"  # below the retention anchor: added after the purge
    if row_hash(row, row["prev_hash"]) != row["row_hash"]:
        return row_id, "altered"
    if row["prev_hash"] != walk.expected_prev:
        return _broken_link(connection, walk, row, following)
    if row_id != walk.expected_id:
        return walk.expected_id, "deleted" if row_id > walk.expected_id else "altered"
    if row_id > head.last_id:
        return row_id, "inserted"  # appended without going through the head
    return None


def _broken_link(
    connection: Connection,
    walk: _Walk,
    row: RowMapping,
    following: RowMapping | None,
) -> tuple[int, Reason]:
    """Why `row` does not point to the row before it."""
    row_id: int = row["id"]
    # Unindexed lookups, but only once, on the row where verification already failed.
    target = connection.scalar(
        select(func.min(AuditEventRow.id)).where(AuditEventRow.row_hash == row["prev_hash"])
    )
    if target is None:
        if following is not None and following["prev_hash"] == walk.expected_prev:
            return row_id, "inserted"  # the chain goes on around this row
        return walk.expected_id, "deleted"  # its predecessor is gone
    if target > row_id:
        return row_id, "reordered"
    # It points further back than the previous row: what lies in between was slipped in.
    first_extra = connection.scalar(
        select(func.min(AuditEventRow.id)).where(AuditEventRow.id > target)
    )
    return (first_extra if first_extra is not None else row_id), "inserted"
