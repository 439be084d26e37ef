"""The account service's parts beside a running broker: the same database, Redis and HSM
token, for what a test plants or runs next to the server (a source to find, the periodic
re-sync)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sharelock.accounts import AccountParts
from sharelock.audit import AuditTrail
from sharelock.clock import SYSTEM_CLOCK
from sharelock.config import Settings
from sharelock.db import create_engine_for
from sharelock.flow import AsyncAudit, AsyncPartners, Records
from sharelock.keys import KeyLayer
from sharelock.registry import PartnerRegistry
from sharelock.store import SealedStore


@asynccontextmanager
async def account_parts(settings: Settings, keys: KeyLayer) -> AsyncIterator[AccountParts]:
    engine = create_engine_for(settings)
    store = SealedStore.from_url(settings.redis_url or "", keys, settings.retention)
    try:
        yield AccountParts(
            settings,
            keys,
            Records(store, settings.retention, SYSTEM_CLOCK),
            engine,
            AsyncAudit(AuditTrail(engine)),
            AsyncPartners(PartnerRegistry(engine)),
            {"sandbox-bank": "Banque Sandbox"},
        )
    finally:
        await store.aclose()
        engine.dispose()
