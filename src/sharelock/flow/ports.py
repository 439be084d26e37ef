"""What the flow needs from the other packages, as async-friendly adapters.

The registry and the audit trail are synchronous SQLAlchemy code; they run on the database
executor (`sharelock.blocking`) so the event loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
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
        # A partner remembered a few seconds (`Settings.partner_cache_seconds`) is answered
        # here: the hop to a database thread cost more than the lookup.
        hit, partner = self._registry.from_cache(client_id)
        if hit:
            return partner
        return await run_blocking(self._registry.get, client_id)

    async def authenticate(self, client_id: str, secret: str) -> Partner | None:
        return await run_blocking(self._registry.authenticate, client_id, secret)


class AsyncAudit:
    """Appends audit rows; raises (and so stops the action) when a row cannot be written.

    Group commit: while one transaction is being committed, the rows other requests of this
    process ask for wait, then go together in the next one (`AuditTrail.record_many`). Each
    caller still returns only once its own row is committed, with its own outcome (its id,
    `DuplicateDelivery`, or `AuditUnavailable` for the whole transaction), so every rule that
    rests on "the row first" holds; under load, a share costs fewer transactions."""

    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail
        self._waiting: list[tuple[AuditEvent, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, event: EventType, **fields: Any) -> int:
        row = AuditEvent(event=event, **fields)  # an invalid row is refused here, alone
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches())
        return await done

    async def _write_batches(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await run_blocking(self._trail.record_many, [row for row, _ in batch])
            except BaseException as exc:  # the transaction failed: nobody's row is written
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(result)

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
        "identity_verification": partner.identity_verification,
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
