"""Searching the trail: the auditor's questions (by pseudonymous login, partner, data source,
period). Kept to plain filters; export and richer queries build on it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from sharelock.audit.errors import AuditUnavailable, InvalidAuditEvent
from sharelock.audit.records import AuditRecord, select_records
from sharelock.db.models import AuditEventRow

MAX_LIMIT = 1000


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
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidAuditEvent(f"limit: must be between 1 and {MAX_LIMIT}")
    if offset < 0:
        raise InvalidAuditEvent("offset: must not be negative")
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidAuditEvent(f"{name}: must be timezone-aware")
    query = select_records()
    if login_hash is not None:
        query = query.where(AuditEventRow.login_hash == login_hash)
    if client_id is not None:
        query = query.where(AuditEventRow.client_id == client_id)
    if data_source is not None:
        query = query.where(AuditEventRow.data_source == data_source)
    if since is not None:
        query = query.where(AuditEventRow.at >= since)
    if until is not None:
        query = query.where(AuditEventRow.at < until)
    query = query.order_by(AuditEventRow.id).limit(limit).offset(offset)
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
    except SQLAlchemyError as exc:
        raise AuditUnavailable(f"audit trail unavailable: {type(exc).__name__}") from exc
    return [AuditRecord.from_mapping(row) for row in rows]
