"""The audit trail writer: appends hash-chained rows, one committed transaction each.

An append locks the chain head (`SELECT … FOR UPDATE` on PostgreSQL; on SQLite the whole
transaction starts with `BEGIN IMMEDIATE`), takes the next id and the previous hash from it,
inserts the row and moves the head, then commits. Concurrent writers in any number of
processes therefore queue on the head, and the chain never forks.

`record` returns only after the commit; `record_many` appends several rows in one transaction
(the broker's group commit, `sharelock.flow.AsyncAudit`), each one's outcome its own. Callers
write the row *before* the action it records (e.g. the release of data) and do not act if it
raises (SECURITY-CHECKLIST case 45).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Dialect, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from sharelock.audit.chain import row_hash
from sharelock.audit.errors import AuditUnavailable, DuplicateDelivery
from sharelock.audit.events import AuditEvent
from sharelock.db import WRITE_LOCK, AuditChainHead, AuditEventRow, database_errors

log = logging.getLogger(__name__)

_HEAD_ID = 1
# Built once: a statement without inline values has a constant cache key, so executing it
# skips SQLAlchemy's per-call traversal of the values.
_INSERT_ROW = insert(AuditEventRow)
_MOVE_HEAD = (
    update(AuditChainHead)
    .where(AuditChainHead.id == _HEAD_ID)
    .values(last_id=bindparam("new_id"), last_hash=bindparam("new_hash"))
)
# The chain head, read (and, in a writer's transaction, locked) by every writer and verifier,
# and the check of one delivery key: built once too, rather than a new `select` per call.
_READ_HEAD = select(
    AuditChainHead.last_id,
    AuditChainHead.last_hash,
    AuditChainHead.anchor_id,
    AuditChainHead.anchor_hash,
).where(AuditChainHead.id == _HEAD_ID)
_READ_HEAD_LOCKED = _READ_HEAD.with_for_update()
_DELIVERED = select(AuditEventRow.id).where(AuditEventRow.delivery_key == bindparam("key"))


class AuditTrail:
    """Appends audit rows to the database behind `engine` (from `create_engine_for`).
    Synchronous; safe to share between threads and to use from several processes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_LOCK: True})

    def __repr__(self) -> str:
        return f"AuditTrail(engine={self._engine!r})"

    @property
    def engine(self) -> Engine:
        return self._engine

    def record(self, event: AuditEvent) -> int:
        """Append `event`; returns its id once committed.

        Raises `DuplicateDelivery` if a `data_delivered` row with the same delivery key
        exists (nothing is written), and `AuditUnavailable` for any other failure."""
        if not isinstance(event, AuditEvent):
            raise TypeError("record() takes an AuditEvent")
        try:
            with database_errors(
                AuditUnavailable, "audit trail unavailable", connection_detail=True
            ):
                try:
                    with self._writer.begin() as connection:
                        return self._append(connection, event)
                except IntegrityError as exc:
                    # The unique index on the delivery key refused the row (the check in
                    # `_append` normally sees it first): a duplicate all the same, which the
                    # caller must tell from a failure. Any other refusal is a failure, left to
                    # the translation around this block.
                    if "delivery_key" in str(exc.orig):
                        raise DuplicateDelivery("this delivery was already recorded") from None
                    raise
        except AuditUnavailable as exc:
            # The action the row was for will not happen: the operator must hear of it.
            log.warning("%s", exc)
            raise

    def record_many(self, events: Sequence[AuditEvent]) -> list[int | DuplicateDelivery]:
        """Append several events in one transaction (a group commit), in order; for each,
        its id, or `DuplicateDelivery` if its delivery key was already recorded (by an earlier
        row, or by an event before it in `events`), in which case nothing is written for it.
        Returns once all are committed; `AuditUnavailable` if the transaction fails, in
        which case none of them is written."""
        if not all(isinstance(event, AuditEvent) for event in events):
            raise TypeError("record_many() takes AuditEvents")
        try:
            return self._record_batch(events)
        except IntegrityError:
            # Only a row the head's lock did not serialise could do this (the unique index as
            # a second lock): each event alone, so that only the offending one is refused.
            return [self._record_one(event) for event in events]

    def _record_one(self, event: AuditEvent) -> int | DuplicateDelivery:
        try:
            return self.record(event)
        except DuplicateDelivery as duplicate:
            return duplicate

    def _record_batch(self, events: Sequence[AuditEvent]) -> list[int | DuplicateDelivery]:
        try:
            with (
                database_errors(
                    AuditUnavailable, "audit trail unavailable", connection_detail=True
                ),
                self._writer.begin() as connection,
            ):
                # The transaction (its `BEGIN IMMEDIATE` on SQLite, its commit or rollback) is
                # SQLAlchemy's; the statements in it go to the driver directly (`_Statements`).
                statements = _statements_for(connection.dialect)
                with statements.cursor(connection) as cursor:
                    head = statements.read_head(cursor)
                    recorded = statements.delivered_among(cursor, events)
                    results: list[int | DuplicateDelivery] = []
                    rows: list[dict[str, object]] = []
                    for event in events:
                        key = event.delivery_key
                        if key is not None and key in recorded:
                            results.append(DuplicateDelivery("this delivery was already recorded"))
                            continue
                        if key is not None:
                            recorded.add(key)
                        row, head = self._chain(head, event)
                        rows.append(row)
                        results.append(head.last_id)
                    if rows:
                        # One executemany: the batch costs one round trip.
                        statements.insert(cursor, rows)
                    statements.move_head(cursor, head)
                return results
        except AuditUnavailable as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise exc.__cause__ from None
            log.warning("%s", exc)
            raise

    @staticmethod
    def _delivered(connection: Connection, delivery_key: str) -> bool:
        found = connection.scalar(_DELIVERED, {"key": delivery_key})
        return found is not None

    @staticmethod
    def _chain(head: ChainHead, event: AuditEvent) -> tuple[dict[str, object], ChainHead]:
        """The row for `event` after `head`, and the head that row makes."""
        new_id = head.last_id + 1
        columns = {**event.columns(), "at": datetime.now(UTC)}
        digest = row_hash(columns, head.last_hash)
        row = {"id": new_id, "prev_hash": head.last_hash, "row_hash": digest, **columns}
        return row, head._replace(last_id=new_id, last_hash=digest)

    @classmethod
    def _insert(cls, connection: Connection, head: ChainHead, event: AuditEvent) -> ChainHead:
        row, head = cls._chain(head, event)
        connection.execute(_INSERT_ROW, [row])
        return head

    @staticmethod
    def _move_head(connection: Connection, head: ChainHead) -> None:
        connection.execute(_MOVE_HEAD, {"new_id": head.last_id, "new_hash": head.last_hash})

    def _append(self, connection: Connection, event: AuditEvent) -> int:
        head = read_head(connection, lock=True)
        if event.delivery_key is not None and self._delivered(connection, event.delivery_key):
            raise DuplicateDelivery("this delivery was already recorded")
        head = self._insert(connection, head, event)
        self._move_head(connection, head)
        return head.last_id

    def purge(self, before: datetime) -> int:
        """Delete the oldest rows, those before the first row at or after `before` (the
        retention limit), and move the chain's anchor to the last row deleted, so that
        `verify_chain` still checks everything that remains. Returns how many were deleted.

        Retention goes through `Checkpointer.purge` instead, which also signs what it
        removed, so that the full verification (`verify_trail`) can tell it from tampering."""
        with (
            database_errors(AuditUnavailable, "audit trail unavailable"),
            self._writer.begin() as connection,
        ):
            purged = purge_locked(connection, read_head(connection, lock=True), before)
            return 0 if purged is None else purged.rows


class Purged(NamedTuple):
    """Rows `from_id` to `through_id` were deleted (`rows` of them); `through_hash` is the
    last deleted row's hash, the chain's new anchor."""

    from_id: int
    through_id: int
    rows: int
    through_hash: str


def purge_locked(connection: Connection, head: ChainHead, before: datetime) -> Purged | None:
    """The purge itself, inside the caller's transaction, which holds the head's lock."""
    if before.tzinfo is None:
        raise ValueError("purge(before=...) needs a timezone-aware datetime")
    first_kept = connection.scalar(
        select(func.min(AuditEventRow.id)).where(AuditEventRow.at >= before)
    )
    boundary = head.last_id if first_kept is None else first_kept - 1
    if boundary <= head.anchor_id:
        return None
    anchor_hash = connection.scalar(
        select(AuditEventRow.row_hash).where(AuditEventRow.id == boundary)
    )
    if anchor_hash is None:
        raise AuditUnavailable("audit chain is damaged: run the verification")
    deleted = connection.execute(delete(AuditEventRow).where(AuditEventRow.id <= boundary)).rowcount
    connection.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == _HEAD_ID)
        .values(anchor_id=boundary, anchor_hash=anchor_hash)
    )
    return Purged(head.anchor_id + 1, boundary, int(deleted), anchor_hash)


class ChainHead(NamedTuple):
    last_id: int
    last_hash: str
    anchor_id: int
    anchor_hash: str


def read_head(connection: Connection, *, lock: bool = False) -> ChainHead:
    """The chain head; with `lock`, held until the transaction ends (PostgreSQL row lock;
    SQLite is already serialised by `BEGIN IMMEDIATE`)."""
    row = connection.execute(_READ_HEAD_LOCKED if lock else _READ_HEAD).one_or_none()
    if row is None:
        raise AuditUnavailable("audit chain head is missing: run the database migrations")
    return ChainHead(*row)


# -- the writer's statements, through the DB-API ------------------------------------------------

_ROW_COLUMNS: tuple[str, ...] = tuple(column.name for column in AuditEventRow.__table__.columns)
_Processor = Callable[[Any], Any]


class _Statements:
    """The group commit's four statements (read and lock the head, the delivery keys already
    recorded, insert the rows, move the head) as plain SQL on the driver's cursor, inside the
    transaction SQLAlchemy began (and will commit or roll back) on the same connection.

    Why: through SQLAlchemy Core each of them cost more CPU than the database's own work
    (execution context, events, result wrapping: about 0.6 of an append's 1.2 ms on SQLite),
    and the audit trail writes every row of every share. What SQLAlchemy did for them is done
    here the same way: values go through each column type's own bind processor for this
    dialect (the time becomes exactly what Core stored, so a row hashes and verifies the
    same), and a driver error becomes the `DBAPIError` subclass Core would have raised
    (`IntegrityError` for the unique delivery key), parameters hidden, with the connection
    invalidated if the driver says it is gone, so every caller's handling stays as it was."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        # Every statement is made of constants (table and column names from the model, the
        # driver's placeholder); values only ever go as parameters (hence the `noqa: S608`).
        marker = "%s" if dialect.paramstyle in ("format", "pyformat") else "?"
        lock = " FOR UPDATE" if dialect.name == "postgresql" else ""
        self._read_head_sql = (
            "SELECT last_id, last_hash, anchor_id, anchor_hash FROM audit_chain_head "  # noqa: S608
            f"WHERE id = {_HEAD_ID}{lock}"
        )
        self._delivered_sql = "SELECT delivery_key FROM audit_events WHERE delivery_key IN ({})"
        self._marker = marker
        self._insert_sql = (
            f"INSERT INTO audit_events ({', '.join(_ROW_COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join([marker] * len(_ROW_COLUMNS))})"
        )
        self._move_head_sql = (
            f"UPDATE audit_chain_head SET last_id = {marker}, last_hash = {marker} "  # noqa: S608
            f"WHERE id = {_HEAD_ID}"
        )
        table = AuditEventRow.__table__
        self._processors: list[tuple[int, _Processor]] = []
        for index, name in enumerate(_ROW_COLUMNS):
            processor = table.columns[name].type.bind_processor(dialect)
            if processor is not None:
                self._processors.append((index, processor))

    @contextmanager
    def cursor(self, connection: Connection) -> Iterator[Any]:
        pooled = connection.connection
        cursor = pooled.cursor()
        statement = ""
        try:
            yield cursor
        except self._dialect.loaded_dbapi.Error as exc:
            disconnected = self._dialect.is_disconnect(exc, pooled, cursor)
            if disconnected:
                connection.invalidate(exc)
            raise DBAPIError.instance(
                statement,
                None,
                exc,
                self._dialect.loaded_dbapi.Error,
                hide_parameters=True,
                dialect=self._dialect,
                ismulti=None,
                connection_invalidated=disconnected,
            ) from exc
        finally:
            cursor.close()

    def read_head(self, cursor: Any) -> ChainHead:
        cursor.execute(self._read_head_sql)
        row = cursor.fetchone()
        if row is None:
            raise AuditUnavailable("audit chain head is missing: run the database migrations")
        return ChainHead(int(row[0]), row[1], int(row[2]), row[3])

    def delivered_among(self, cursor: Any, events: Sequence[AuditEvent]) -> set[str]:
        """The delivery keys of `events` that already have their row (one query)."""
        keys = sorted({event.delivery_key for event in events if event.delivery_key is not None})
        if not keys:
            return set()
        cursor.execute(self._delivered_sql.format(", ".join([self._marker] * len(keys))), keys)
        return {row[0] for row in cursor.fetchall() if row[0] is not None}

    def insert(self, cursor: Any, rows: Sequence[dict[str, object]]) -> None:
        values = []
        for row in rows:
            line = [row.get(name) for name in _ROW_COLUMNS]
            for index, processor in self._processors:
                line[index] = processor(line[index])
            values.append(line)
        cursor.executemany(self._insert_sql, values)

    def move_head(self, cursor: Any, head: ChainHead) -> None:
        cursor.execute(self._move_head_sql, (head.last_id, head.last_hash))


_STATEMENTS: dict[str, _Statements] = {}


def _statements_for(dialect: Dialect) -> _Statements:
    """One `_Statements` per kind of database (the process has one or two engines)."""
    key = f"{dialect.name}+{dialect.driver}"
    statements = _STATEMENTS.get(key)
    if statements is None:
        statements = _STATEMENTS[key] = _Statements(dialect)
    return statements
