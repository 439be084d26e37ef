"""An auditor's question, validated once for the API and the command line alike.

`TraceFilters` holds the filters of a trace search (SPEC: login hash, partner, data source,
period); `parse_time` reads the period's bounds. `auditor_query_event` is the audit row that
records the question itself: who asked (`actor`, an auditor id, never a token), and what
(the filters, in their columns and in `query`). The row is written before the answer is
given; if it cannot be, there is no answer (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import Select

from sharelock.audit.chain import canonical_time
from sharelock.audit.errors import InvalidAuditEvent
from sharelock.audit.events import CLIENT_ID, DATA_SOURCE, LOGIN_HASH, AuditEvent, EventType
from sharelock.db import AuditEventRow

QueryKind = Literal["hash", "traces", "export", "verify", "checkpoint"]


def parse_time(name: str, value: str | None) -> datetime | None:
    """`2025-01-31` (midnight UTC) or an ISO 8601 time with its offset (`…Z`, `…+01:00`).
    A time without an offset is refused rather than guessed."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidAuditEvent(
            f"{name}: expected a date (YYYY-MM-DD) or an ISO 8601 time"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidAuditEvent(f"{name}: give the time's offset (e.g. Z or +01:00)")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class TraceFilters:
    login_hash: str | None = None
    client_id: str | None = None
    data_source: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        checks = (
            ("login_hash", LOGIN_HASH, "a keyed hash 'hmac-sha256:<64 hex>'"),
            ("client_id", CLIENT_ID, "a client id"),
            ("data_source", DATA_SOURCE, "a data source id"),
        )
        for name, pattern, what in checks:
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
                raise InvalidAuditEvent(f"{name}: must be {what}")
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise InvalidAuditEvent(f"{name}: must be timezone-aware")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidAuditEvent("since: must come before until")

    @classmethod
    def parse(
        cls,
        *,
        login_hash: str | None = None,
        client_id: str | None = None,
        data_source: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> TraceFilters:
        return cls(
            login_hash=login_hash or None,
            client_id=client_id or None,
            data_source=data_source or None,
            since=parse_time("since", since),
            until=parse_time("until", until),
        )

    def apply(self, query: Select[Any]) -> Select[Any]:
        """`query` narrowed to rows matching every filter (`since` inclusive, `until` not)."""
        if self.login_hash is not None:
            query = query.where(AuditEventRow.login_hash == self.login_hash)
        if self.client_id is not None:
            query = query.where(AuditEventRow.client_id == self.client_id)
        if self.data_source is not None:
            query = query.where(AuditEventRow.data_source == self.data_source)
        if self.since is not None:
            query = query.where(AuditEventRow.at >= self.since)
        if self.until is not None:
            query = query.where(AuditEventRow.at < self.until)
        return query


def auditor_query_event(
    actor: str, kind: QueryKind, filters: TraceFilters | None = None, **extra: str | int
) -> AuditEvent:
    """The audit row recording an auditor's question. `extra` (limit, offset, format, …)
    goes into `query` with the period, as `name=value&…`; values are numbers or codes."""
    filters = filters or TraceFilters()
    parts: dict[str, str] = {}
    if filters.since is not None:
        parts["since"] = canonical_time(filters.since)
    if filters.until is not None:
        parts["until"] = canonical_time(filters.until)
    parts.update({name: str(value) for name, value in extra.items()})
    return AuditEvent(
        event=EventType.AUDITOR_QUERY,
        actor=actor,
        outcome=kind,
        login_hash=filters.login_hash,
        client_id=filters.client_id,
        data_source=filters.data_source,
        query="&".join(f"{name}={value}" for name, value in parts.items()) or None,
    )
