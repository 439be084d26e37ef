"""What the account services share: the parts they are built on (`broker.py` builds them),
the signed-in browser, and the audit row every change writes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from sharelock.accounts.rows import account_ref
from sharelock.audit import EventType
from sharelock.clock import SYSTEM_CLOCK, Clock, utc
from sharelock.config import Settings
from sharelock.flow import AsyncAudit, AsyncPartners, Kind, Records
from sharelock.keys import KeyLayer
from sharelock.store import redis_max_lifetime


@dataclass(frozen=True, slots=True)
class AccountParts:
    settings: Settings
    keys: KeyLayer
    records: Records
    engine: Engine
    audit: AsyncAudit
    partners: AsyncPartners
    data_sources: Mapping[str, str] = field(default_factory=dict)  # id -> name
    clock: Clock = SYSTEM_CLOCK

    def now(self) -> datetime:
        return utc(self.clock)

    def lifetime(self, kind: Kind[Any]) -> timedelta:
        """How long a record of `kind` lives: its own lifetime, within what the store accepts
        (a broker configured with very short sessions caps everything it keeps)."""
        retention = self.settings.retention
        return min(kind.lifetime(retention), redis_max_lifetime(retention))

    def until(self, kind: Kind[Any]) -> float:
        """When a record of `kind` written now ends."""
        return self.clock.now() + self.lifetime(kind).total_seconds()

    async def audit_change(self, event: EventType, account_id: str, **fields: Any) -> None:
        """The audit row of a change to an account, pseudonymous: the account's reference,
        never its id. Raises (and so stops the change) if it cannot be written."""
        fields.setdefault("actor", "person")
        await self.audit.record(event, flow_ref=account_ref(account_id), **fields)


@dataclass(frozen=True, slots=True, repr=False)
class SignedIn:
    """A browser signed in to an account: its session handle (the cookie's value), the account,
    and whether it came in with the recovery code (then it may only add a passkey)."""

    handle: str
    account_id: str
    recovery: bool = False

    def __repr__(self) -> str:
        return f"SignedIn(recovery={self.recovery})"
