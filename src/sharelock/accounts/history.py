"""The history of an account's shares, read from the audit trail: the rows of the connected
sources' login hashes that record a decision or a delivery, as the rights pages find a person's
rows (by the keyed hash of their login). The account itself keeps no history of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from sharelock.accounts.errors import AccountsUnavailable
from sharelock.audit import AuditRecord, EventType, select_records
from sharelock.db import AuditEventRow, database_errors

SHARE_EVENTS = (EventType.CONSENT_GIVEN, EventType.CONSENT_REFUSED, EventType.DATA_DELIVERED)
MAX_SHARES = 200


def share_rows(
    engine: Engine, login_hashes: Sequence[str], limit: int = MAX_SHARES
) -> list[AuditRecord]:
    """The latest `limit` decisions and deliveries under these login hashes, newest first."""
    if not login_hashes:
        return []
    row = AuditEventRow
    query = (
        select_records()
        .where(
            row.login_hash.in_(sorted(set(login_hashes))),
            row.event.in_([event.value for event in SHARE_EVENTS]),
        )
        .order_by(row.id.desc())
        .limit(limit)
    )
    with (
        database_errors(AccountsUnavailable, "audit trail unavailable"),
        engine.connect() as connection,
    ):
        return [AuditRecord.from_mapping(r) for r in connection.execute(query).mappings()]
