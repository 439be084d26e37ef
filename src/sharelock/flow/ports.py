"""What the flow needs from the other packages, as async-friendly adapters.

The registry and the audit trail are synchronous SQLAlchemy code; they run on the database
executor (`sharelock.blocking`) so the event loop never blocks on the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sharelock.audit import (
    AuditEvent,
    AuditRecord,
    AuditTrail,
    AuditUnavailable,
    EventType,
    select_records,
)
from sharelock.blocking import run_blocking
from sharelock.db import AuditEventRow, database_errors
from sharelock.registry import Partner, PartnerRegistry


class AsyncPartners:
    def __init__(self, registry: PartnerRegistry) -> None:
        self._registry = registry

    async def get(self, client_id: str) -> Partner | None:
        return await run_blocking(self._registry.get, client_id)

    async def authenticate(self, client_id: str, secret: str) -> Partner | None:
        return await run_blocking(self._registry.authenticate, client_id, secret)


class AsyncAudit:
    """Appends audit rows; raises (and so stops the action) when a row cannot be written."""

    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail

    async def record(self, event: EventType, **fields: Any) -> int:
        return await run_blocking(self._trail.record, AuditEvent(event=event, **fields))

    async def delivery(self, delivery_key: str) -> AuditRecord | None:
        """The `data_delivered` row with this delivery key, if the data was released."""
        return await run_blocking(self._delivery, delivery_key)

    def _delivery(self, delivery_key: str) -> AuditRecord | None:
        query = select_records().where(AuditEventRow.delivery_key == delivery_key)
        with (
            database_errors(AuditUnavailable, "audit trail unavailable"),
            self._trail.engine.connect() as connection,
        ):
            row = connection.execute(query).mappings().one_or_none()
        return None if row is None else AuditRecord.from_mapping(row)


def partner_view(partner: Partner) -> Mapping[str, Any]:
    return {
        "client_id": partner.client_id,
        "name": partner.name,
        "purpose": partner.purpose,
        "home_url": partner.home_url,
        "logo_url": partner.logo_url,
    }


def eligible_sources(sources: Mapping[str, Any], scopes: Sequence[str]) -> list[dict[str, Any]]:
    """Data sources able to provide every requested scope."""
    return [
        {
            "id": c.info.id,
            "name": c.info.name,
            "scopes": list(c.info.scopes),
            "login_label": c.info.login_label,
            "login_pattern": c.info.login_pattern,
        }
        for c in sources.values()
        if set(scopes) <= set(c.info.scopes)
    ]
