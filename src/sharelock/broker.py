"""The composition root: every service of the broker, built once per process from `Settings`.

`web` (the app's lifespan) and `cli` build a `Broker` with `Broker.assemble` and use its parts;
nothing else constructs services. `Broker.assemble` runs no migration: `sharelock serve`,
`sharelock demo` and the app's start-up do; `OperatorTools` (the operator's commands, which
need the database but not Redis) brings the schema up to date when it opens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from sharelock.accounts import AccountParts, AccountService, RememberedSources, SourceSync
from sharelock.audit import AuditTrail, AuditUnavailable
from sharelock.auditors import AuditorRegistry
from sharelock.blocking import run_blocking
from sharelock.clock import SYSTEM_CLOCK, Clock
from sharelock.config import Settings
from sharelock.connectors import Connector, build_connectors
from sharelock.db import create_engine_for, database_errors, migrate
from sharelock.errors import ConfigError
from sharelock.flow import (
    ASSERTION_JTI,
    DPOP_JTI,
    AsyncAudit,
    AsyncPartners,
    ConsentService,
    DeliveryService,
    Envelopes,
    Records,
    encrypt_to,
)
from sharelock.keys import KeyLayer
from sharelock.maintenance import MaintenanceVault
from sharelock.oauth import NonceIssuer, digest
from sharelock.ratelimit import IDENTIFIER_KEY_LABEL, RateLimiter, identifier_key_from
from sharelock.registry import PartnerRegistry
from sharelock.rights import ProofService, RightsDesk, RightsService
from sharelock.store import (
    RedisEndpoint,
    SealedStore,
    cluster_link,
    connect_endpoint,
    verify_redis,
)
from sharelock.webhooks import WebhookQueue, Webhooks


@dataclass
class Broker:
    settings: Settings
    keys: KeyLayer
    engine: Engine
    store: SealedStore
    records: Records
    trail: AuditTrail
    auditors: AuditorRegistry
    partners: AsyncPartners
    audit: AsyncAudit
    consent: ConsentService
    delivery: DeliveryService
    envelopes: Envelopes
    connectors: dict[str, Connector]
    limiter: RateLimiter
    maintenance: MaintenanceVault
    rights: RightsService
    proofs: ProofService
    desk: RightsDesk
    # The optional account with passkeys (`sharelock.accounts`).
    accounts: AccountService
    # Its remembered sources: the offer after a share, the one-click share, periodic re-syncs.
    remembered: RememberedSources
    clock: Clock = field(default=SYSTEM_CLOCK)
    # DPoP server nonces (`Settings.dpop_nonces`), None when not required.
    dpop_nonces: NonceIssuer | None = None
    # The webhook relay and sender (`serve` runs them when `Settings.webhook_enabled`).
    webhooks: Webhooks | None = None

    @classmethod
    def assemble(
        cls,
        settings: Settings,
        keys: KeyLayer,
        connectors: dict[str, Connector] | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Broker:
        # ConfigError if neither a URL nor Sentinels are set.
        endpoint = RedisEndpoint.from_settings(settings)
        if endpoint.sentinels or endpoint.cluster_nodes:
            # Sentinels or cluster nodes are asked now (one round trip each): a wrong list or
            # service name stops start-up with its variable named, not every request failing.
            verify_redis(endpoint)
        engine = create_engine_for(settings)
        store = SealedStore.for_endpoint(endpoint, keys, settings.retention)
        records = Records(store, settings.retention, clock)
        partners = AsyncPartners(
            PartnerRegistry(engine, cache_seconds=settings.partner_cache_seconds)
        )
        trail = AuditTrail(engine)
        audit = AsyncAudit(trail)
        sources = connectors if connectors is not None else build_connectors(settings)
        # One HSM call at start: every process sharing the token derives the same key.
        identifier_key = identifier_key_from(keys.keyed_hash(IDENTIFIER_KEY_LABEL))
        limiter = RateLimiter(
            store.client,
            settings.limits,
            identifier_key,
            cluster=cluster_link(endpoint) if endpoint.cluster_nodes else None,
        )
        maintenance = MaintenanceVault(engine, keys, settings.retention)
        names = {source_id: c.info.name for source_id, c in sources.items()}
        accounts = AccountService(
            AccountParts(settings, keys, records, engine, audit, partners, names, clock)
        )
        consent = ConsentService(
            settings,
            records,
            keys,
            partners,
            audit,
            sources,
            limiter=limiter,
            clock=clock,
            maintenance=maintenance,
            remember_offers=settings.account_offers and accounts.available,
        )
        rights = RightsService(
            settings,
            keys,
            records,
            engine,
            audit,
            partners,
            {source_id: c.info.name for source_id, c in sources.items()},
        )
        proofs = ProofService(settings, keys, records, consent.envelopes, audit, sources, limiter)
        return cls(
            settings=settings,
            keys=keys,
            engine=engine,
            store=store,
            records=records,
            trail=trail,
            auditors=AuditorRegistry(engine, trail),
            partners=partners,
            audit=audit,
            consent=consent,
            delivery=DeliveryService(settings, records, audit, clock, keys=keys, partners=partners),
            envelopes=consent.envelopes,
            connectors=sources,
            limiter=limiter,
            maintenance=maintenance,
            rights=rights,
            proofs=proofs,
            desk=RightsDesk(settings, records, engine, audit, partners),
            accounts=accounts,
            remembered=RememberedSources(
                accounts.parts, accounts.holdings, consent, SourceSync(accounts.parts, sources)
            ),
            clock=clock,
            dpop_nonces=_dpop_nonces(settings, keys),
            webhooks=Webhooks.assemble(
                settings, store.client, engine, keys, partners, clock, encrypt=encrypt_to
            ),
        )

    async def close(self) -> None:
        try:
            if self.webhooks is not None:
                await self.webhooks.aclose()
            for connector in self.connectors.values():
                await connector.aclose()
        finally:
            await self.store.aclose()
            # The database executor (`sharelock.blocking`) is the process's, shared by every
            # broker a test process builds: it is not shut down with one of them.
            self.engine.dispose()

    async def remember_assertion(self, key: str, expires_at: float) -> bool:
        """Remember a client assertion's jti until it expires; False on a replay."""
        return await self.records.put_new(ASSERTION_JTI, digest(key), b"1", until=expires_at)

    async def remember_dpop_jti(self, key: str, until: float) -> bool:
        """Remember a DPoP proof's key and jti while the proof could be accepted; False on a
        replay (RFC 9449 §11.1)."""
        return await self.records.put_new(DPOP_JTI, digest(key), b"1", until=until)

    def readiness_probes(self) -> dict[str, Callable[[], Awaitable[None]]]:
        async def hsm() -> None:
            await self.keys.run_async(self.keys.check)

        async def redis() -> None:
            await self.store.ping()

        def query_database() -> None:
            with (
                database_errors(AuditUnavailable, "the database does not answer"),
                self.engine.connect() as connection,
            ):
                connection.execute(text("SELECT 1"))

        async def database() -> None:
            await run_blocking(query_database)

        return {"hsm": hsm, "redis": redis, "database": database}


@dataclass
class OperatorTools:
    """What the operator's commands use (`sharelock partners`, `auditors`, `audit`,
    `maintenance`, `retention`, `records`): the database, its schema brought up to date, and
    the services over it; never Redis, which they do not need. Built here like `Broker`, so
    that no command constructs a service itself."""

    settings: Settings
    engine: Engine
    trail: AuditTrail
    partners: PartnerRegistry
    auditors: AuditorRegistry

    @classmethod
    @contextmanager
    def open(cls, settings: Settings) -> Iterator[OperatorTools]:
        engine = create_engine_for(settings)
        try:
            migrate(engine)
            trail = AuditTrail(engine)
            yield cls(
                settings, engine, trail, PartnerRegistry(engine), AuditorRegistry(engine, trail)
            )
        finally:
            engine.dispose()

    def vault(self, keys: KeyLayer) -> MaintenanceVault:
        """The credentials kept for maintenance, opened with this command's HSM session."""
        return MaintenanceVault(self.engine, keys, self.settings.retention)


@asynccontextmanager
async def webhook_queue(settings: Settings) -> AsyncIterator[WebhookQueue]:
    """The webhook queue on the configured Redis, for the operator's `sharelock webhooks`.
    The embedded redis-server lives only as long as the `serve` or `demo` that started it:
    its queue is out of an operator command's reach."""
    if not settings.redis_configured:
        raise ConfigError(
            "the webhook queue is in the broker's Redis: set SHARELOCK_REDIS_URL (or the "
            "Sentinels or cluster nodes) as for 'sharelock serve'"
        )
    client = connect_endpoint(RedisEndpoint.from_settings(settings))
    try:
        yield WebhookQueue(client)
    finally:
        await client.aclose()


# The DPoP nonces' key, derived in the HSM like the rate limiter's: every node sharing the
# token makes and accepts the same nonces, with no secret to distribute.
DPOP_NONCE_KEY_LABEL = b"sharelock/dpop-nonces/v1"


def _dpop_nonces(settings: Settings, keys: KeyLayer) -> NonceIssuer | None:
    if not settings.dpop_nonces:
        return None
    return NonceIssuer(identifier_key_from(keys.keyed_hash(DPOP_NONCE_KEY_LABEL)))
