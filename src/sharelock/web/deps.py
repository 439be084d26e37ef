"""The broker's parts as the HTTP layer sees them, assembled once per process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from sharelock.audit import AuditTrail, AuditUnavailable
from sharelock.config import Settings
from sharelock.connectors import build_connectors
from sharelock.connectors.base import Connector
from sharelock.db import create_engine_for, migrate
from sharelock.errors import ConfigError
from sharelock.flow.consent import ConsentService
from sharelock.flow.delivery import DeliveryService
from sharelock.flow.ports import AsyncAudit, AsyncPartners
from sharelock.keys import KeyLayer
from sharelock.maintenance import MaintenanceVault
from sharelock.oauth.tokens import digest
from sharelock.ratelimit import IDENTIFIER_KEY_LABEL, RateLimiter, identifier_key_from
from sharelock.registry import PartnerRegistry
from sharelock.store import SealedStore


@dataclass
class Broker:
    settings: Settings
    keys: KeyLayer
    engine: Engine
    store: SealedStore
    partners: AsyncPartners
    audit: AsyncAudit
    consent: ConsentService
    delivery: DeliveryService
    connectors: dict[str, Connector]
    limiter: RateLimiter

    @classmethod
    def assemble(
        cls,
        settings: Settings,
        keys: KeyLayer,
        connectors: dict[str, Connector] | None = None,
    ) -> Broker:
        if not settings.redis_url:
            raise ConfigError(
                "SHARELOCK_REDIS_URL is not set ('sharelock serve' and 'sharelock demo' start "
                "an embedded redis-server when it is unset)"
            )
        engine = create_engine_for(settings)
        migrate(engine)
        store = SealedStore.from_url(settings.redis_url, keys, settings.retention)
        partners = AsyncPartners(PartnerRegistry(engine))
        audit = AsyncAudit(AuditTrail(engine))
        sources = connectors if connectors is not None else build_connectors(settings)
        # One HSM call at start: every process sharing the token derives the same key.
        identifier_key = identifier_key_from(keys.keyed_hash(IDENTIFIER_KEY_LABEL))
        limiter = RateLimiter(store.client, settings.limits, identifier_key)
        return cls(
            settings=settings,
            keys=keys,
            engine=engine,
            store=store,
            partners=partners,
            audit=audit,
            consent=ConsentService(
                settings,
                store,
                keys,
                partners,
                audit,
                sources,
                maintenance=MaintenanceVault(engine, keys, settings.retention),
                limiter=limiter,
            ),
            delivery=DeliveryService(settings, store, audit),
            connectors=sources,
            limiter=limiter,
        )

    async def close(self) -> None:
        for connector in self.connectors.values():
            await connector.aclose()
        await self.store.aclose()
        self.engine.dispose()

    async def remember_assertion(self, key: str, expires_at: float) -> bool:
        """Remember a client assertion's jti until it expires; False on a replay."""
        return await self.store.put_new(
            "assertion-jti", digest(key), b"1", expire_at=datetime.fromtimestamp(expires_at, UTC)
        )

    def readiness_probes(self) -> dict[str, Callable[[], Awaitable[None]]]:
        async def hsm() -> None:
            await self.keys.run_async(self.keys.check)

        async def redis() -> None:
            await self.store.ping()

        def query_database() -> None:
            try:
                with self.engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            except SQLAlchemyError:
                raise AuditUnavailable("the database does not answer") from None

        async def database() -> None:
            await asyncio.to_thread(query_database)

        return {"hsm": hsm, "redis": redis, "database": database}


def broker_of(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker
