"""Retention of accounts: an account unused for `Retention.account` (13 months by default) is
deleted with everything it holds, by the retention job (`sharelock retention run`, and `serve`
on its timer). "Used" is a sign-in, a new passkey, the recovery code: what moves
`last_used_at`.

Each deletion is audited first (actor `operator`, outcome `unused`), in batches: if the audit
rows cannot be written, nothing is erased. An account used between the audit row and its
erasure is left alone (its row then records a deletion that did not happen, which the next
rows about the account show).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from sharelock.accounts.rows import account_ref, delete_account, unused_accounts
from sharelock.audit import AuditEvent, AuditTrail, EventType

BATCH = 200


def purge_unused_accounts(
    engine: Engine, trail: AuditTrail, unused_for: timedelta, now: datetime
) -> int:
    """Delete every account last used more than `unused_for` before `now`; how many."""
    if unused_for <= timedelta(0):
        raise ValueError("the account retention must be a positive duration")
    before = now - unused_for
    deleted = 0
    while True:
        batch = unused_accounts(engine, before, limit=BATCH)
        if not batch:
            return deleted
        trail.record_many(
            [
                AuditEvent(
                    EventType.ACCOUNT_DELETED,
                    actor="operator",
                    outcome="unused",
                    flow_ref=account_ref(account_id),
                )
                for account_id in batch
            ]
        )
        done = [delete_account(engine, account_id, unused_before=before) for account_id in batch]
        deleted += sum(done)
        if len(batch) < BATCH or not any(done):
            return deleted
