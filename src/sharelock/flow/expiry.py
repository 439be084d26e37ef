"""Accounting for flows that Redis expired: a `data_expired` audit row for each.

Redis drops a flow's keys silently at the session cap; the erasure itself needs nothing more.
What needs doing is the audit trail's record of it, so every flow ends with a row (delivered,
refused, or expired). Flows register in an expiry index when they start and leave it when they
end; `sweep` turns overdue entries into rows.

The index is sharded by slot tag (`sharelock.store.SLOT_TAGS`): a flow's entry lives in the shard
of its own tag, beside its records, so a delivery ends the records and the entry in one script
on Redis Cluster too. The sweep reads every shard.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sharelock.audit import EventType
from sharelock.clock import SYSTEM_CLOCK, Clock, utc
from sharelock.errors import ServiceUnavailable
from sharelock.flow.ports import AsyncAudit
from sharelock.store import SLOT_TAGS, SealedStore, slot_tag, tagged

log = logging.getLogger("sharelock.expiry")

INDEX = "live-flows"
SHARDS: tuple[str, ...] = tuple(tagged(tag, INDEX) for tag in SLOT_TAGS)


def index_of(flow_ref: str) -> str:
    """The index shard of a flow, by its reference (`sharelock.flow.state.flow_ref`)."""
    return tagged(slot_tag(flow_ref), INDEX)


def member(flow_ref: str, client_id: str) -> str:
    return f"{flow_ref}|{client_id}"


async def sweep(
    store: SealedStore, audit: AsyncAudit, now: datetime | None = None, clock: Clock = SYSTEM_CLOCK
) -> int:
    """Record `data_expired` for each flow past its session cap; returns how many."""
    moment = now or utc(clock)
    count = 0
    for shard in SHARDS:
        due = await store.index_pop_due(shard, moment)
        for position, entry in enumerate(due):
            flow_ref, _, client_id = entry.partition("|")
            try:
                await audit.record(
                    EventType.DATA_EXPIRED,
                    client_id=client_id,
                    flow_ref=flow_ref,
                    outcome="expired",
                )
            except ServiceUnavailable:
                # Put back what is not recorded, so the next sweep records it: no expiry goes
                # unaccounted.
                for left in due[position:]:
                    await store.index_add(shard, left, utc(clock))
                raise
        count += len(due)
    return count


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
