"""Searching the trail: the auditor's questions (by pseudonymous login, partner, data source,
period), one page at a time (`search`) or all matching rows in id order (`iter_matching`,
for exports), and how many match (`count_matching`, for progress bars)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import Engine, func, select

from sharelock.audit.errors import AuditUnavailable, InvalidAuditEvent
from sharelock.audit.queries import TraceFilters
from sharelock.audit.records import AuditRecord, select_records
from sharelock.db import AuditEventRow, database_errors

MAX_LIMIT = 1000
EXPORT_BATCH = 1000


def search(
    engine: Engine,
    *,
    login_hash: str | None = None,
    client_id: str | None = None,
    data_source: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditRecord]:
    """Rows matching every given filter, oldest first. `since` is inclusive, `until`
    exclusive; both must be timezone-aware. At most `MAX_LIMIT` rows per call."""
    filters = TraceFilters(login_hash, client_id, data_source, since, until)
    return search_filtered(engine, filters, limit=limit, offset=offset)


def search_filtered(
    engine: Engine, filters: TraceFilters, *, limit: int = 100, offset: int = 0
) -> list[AuditRecord]:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidAuditEvent(f"limit: must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InvalidAuditEvent("offset: must not be negative")
    query = filters.apply(select_records()).order_by(AuditEventRow.id).limit(limit).offset(offset)
    with (
        database_errors(AuditUnavailable, "audit trail unavailable"),
        engine.connect() as connection,
    ):
        rows = connection.execute(query).mappings().all()
    return [AuditRecord.from_mapping(row) for row in rows]


def count_matching(engine: Engine, filters: TraceFilters) -> int:
    query = filters.apply(select(func.count()).select_from(AuditEventRow))
    with (
        database_errors(AuditUnavailable, "audit trail unavailable"),
        engine.connect() as connection,
    ):
        return int(connection.scalar(query) or 0)


def iter_matching(
    engine: Engine, filters: TraceFilters, *, batch: int = EXPORT_BATCH
) -> Iterator[AuditRecord]:
    """Every matching row, oldest first, read `batch` rows at a time by id (keyset
    pagination: no connection is held between batches, and no row is skipped or repeated
    while new rows are appended)."""
    after = 0
    while True:
        query = (
            filters.apply(select_records())
            .where(AuditEventRow.id > after)
            .order_by(AuditEventRow.id)
            .limit(batch)
        )
        with (
            database_errors(AuditUnavailable, "audit trail unavailable"),
            engine.connect() as connection,
        ):
            rows = connection.execute(query).mappings().all()
        for row in rows:
            yield AuditRecord.from_mapping(row)
        if len(rows) < batch:
            return
        after = rows[-1]["id"]
