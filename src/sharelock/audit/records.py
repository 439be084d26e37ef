"""An audit row as read back: a frozen copy, detached from the database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from sharelock.db import AuditEventRow


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    event: str
    client_id: str | None
    data_source: str | None
    login_hash: str | None
    flow_ref: str | None
    browser_family: str | None
    device_type: str | None
    outcome: str | None
    detail_code: str | None
    delivery_key: str | None
    actor: str | None
    query: str | None
    prev_hash: str
    row_hash: str

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> AuditRecord:
        return cls(**{name: row[name] for name in COLUMNS})

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: the time as ISO 8601 UTC."""
        values = asdict(self)
        values["at"] = self.at.isoformat()
        return values


COLUMNS: tuple[str, ...] = tuple(AuditRecord.__dataclass_fields__)


def select_records() -> Select[Any]:
    """`SELECT <every audit column> FROM audit_events`, as plain rows."""
    return select(*(getattr(AuditEventRow, name) for name in COLUMNS))
