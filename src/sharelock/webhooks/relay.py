"""The relay: audit rows after the cursor, for partners with a webhook, into the queue.

The audit trail is the outbox: each event the partner hears of already has its row, committed
before the fact it records. Rows are numbered by the writer under the chain's lock, so a row
is visible only once every row before it is: reading `id > cursor` up to the trail's head
misses nothing. The relay appends the events of those rows and moves the cursor in one Redis
script that first checks the cursor still holds what it read, so several relays (one per
worker process, on several nodes) hand each row over exactly once.

The first relay to run starts at the trail's head: history is not replayed. A partner that
registers a webhook hears of what happens from then on; rows of partners without one are
passed over (the cursor moves past them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine, false, func, select

from sharelock.audit import AuditUnavailable
from sharelock.blocking import run_blocking
from sharelock.clock import Clock
from sharelock.db import AuditEventRow, PartnerRow, database_errors
from sharelock.webhooks.events import RELAYED_AUDIT_EVENTS, AuditFacts, event_of
from sharelock.webhooks.queue import WebhookQueue

log = logging.getLogger("sharelock.webhooks")

BATCH = 500


@dataclass(frozen=True, slots=True)
class Found:
    """Rows to relay after the cursor, and where the cursor goes once they are queued."""

    rows: list[AuditFacts]
    upto: int


def trail_head(engine: Engine) -> int:
    """The id of the trail's last row (0 for an empty trail)."""
    with (
        database_errors(AuditUnavailable, "audit trail unavailable"),
        engine.connect() as connection,
    ):
        return int(connection.scalar(select(func.coalesce(func.max(AuditEventRow.id), 0))) or 0)


def rows_after(engine: Engine, cursor: int, limit: int = BATCH) -> Found:
    """Up to `limit` rows after `cursor` that give an event to a partner with a webhook. The
    cursor may move past rows that give none, up to the head read first (rows after it wait
    for the next pass)."""
    row = AuditEventRow
    with (
        database_errors(AuditUnavailable, "audit trail unavailable"),
        engine.connect() as connection,
    ):
        head = int(connection.scalar(select(func.coalesce(func.max(row.id), 0))) or 0)
        if head <= cursor:
            # Below the cursor: the trail was replaced (a restored or new database); its head
            # is where relaying goes on.
            return Found([], head)
        query = (
            select(
                row.id,
                row.at,
                row.event,
                row.client_id,
                row.row_hash,
                row.flow_ref,
                row.detail_code,
                row.delivery_key,
                row.query,
            )
            .join(PartnerRow, PartnerRow.client_id == row.client_id)
            .where(
                row.id > cursor,
                row.id <= head,
                row.event.in_(RELAYED_AUDIT_EVENTS),
                PartnerRow.webhook_url.is_not(None),
                PartnerRow.disabled == false(),
            )
            .order_by(row.id)
            .limit(limit)
        )
        found = [AuditFacts(**mapping) for mapping in connection.execute(query).mappings()]
    upto = found[-1].id if len(found) == limit else head
    return Found(found, upto)


class Relay:
    def __init__(self, engine: Engine, queue: WebhookQueue, clock: Clock) -> None:
        self.engine = engine
        self.queue = queue
        self.clock = clock

    async def run_once(self, limit: int = BATCH) -> int:
        """Relay what the trail holds past the cursor; how many events this relay queued (0
        when another relay took the same rows first). `StoreUnavailable` or
        `AuditUnavailable` when Redis or the database does not answer: nothing moved."""
        cursor = await self.queue.cursor()
        if cursor is None:
            head = await run_blocking(trail_head, self.engine)
            await self.queue.start_at(head)
            log.info("webhook relay starts after audit row %d", head)
            return 0
        found = await run_blocking(rows_after, self.engine, cursor, limit)
        if found.upto == cursor:
            return 0
        if found.upto < cursor:
            log.warning("the audit trail ends before the webhook cursor: relaying from its end")
        now = self.clock.now()
        events = [event for row in found.rows if (event := event_of(row, now)) is not None]
        if not await self.queue.hand_over(cursor, found.upto, events):
            return 0
        return len(events)
