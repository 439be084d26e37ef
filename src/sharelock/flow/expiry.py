"""Accounting for flows that Redis expired: a `data_expired` audit row for each.

Redis drops a flow's keys silently at the session cap; the erasure itself needs nothing more.
What needs doing is the audit trail's record of it, so every flow ends with a row (delivered,
refused, or expired). Flows register in an expiry index when they start and leave it when they
end; `sweep` turns overdue entries into rows.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sharelock.audit import EventType
from sharelock.clock import SYSTEM_CLOCK, Clock, utc
from sharelock.errors import ServiceUnavailable
from sharelock.flow.ports import AsyncAudit
from sharelock.store import SealedStore

log = logging.getLogger("sharelock.expiry")

INDEX = "live-flows"


def member(flow_ref: str, client_id: str) -> str:
    return f"{flow_ref}|{client_id}"


async def sweep(
    store: SealedStore, audit: AsyncAudit, now: datetime | None = None, clock: Clock = SYSTEM_CLOCK
) -> int:
    """Record `data_expired` for each flow past its session cap; returns how many."""
    due = await store.index_pop_due(INDEX, now or utc(clock))
    for entry in due:
        flow_ref, _, client_id = entry.partition("|")
        try:
            await audit.record(
                EventType.DATA_EXPIRED, client_id=client_id, flow_ref=flow_ref, outcome="expired"
            )
        except ServiceUnavailable:
            # Put it back so the next sweep records it: no expiry goes unaccounted.
            await store.index_add(INDEX, entry, utc(clock))
            raise
    return len(due)


async def sweep_forever(
    store: SealedStore, audit: AsyncAudit, every_s: float, clock: Clock = SYSTEM_CLOCK
) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            count = await sweep(store, audit, clock=clock)
            if count:
                log.info("recorded %d expired flows", count)
        except ServiceUnavailable:
            log.warning("expiry sweep postponed: a backing service is unavailable")
