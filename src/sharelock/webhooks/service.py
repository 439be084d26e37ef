"""Webhooks as a background task of `serve`: relay new audit rows, then send, on a timer.

Every worker process runs it (the relay's script and the consumer group share the work, and
nothing is queued or pushed twice because of it). A Redis, database or HSM outage only pauses
it, with a warning that names no value; a share never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from sqlalchemy import Engine

from sharelock.clock import Clock
from sharelock.config import Settings
from sharelock.errors import ServiceUnavailable
from sharelock.flow import AsyncPartners
from sharelock.keys import KeyLayer
from sharelock.store import RedisClient
from sharelock.webhooks.backoff import Backoff
from sharelock.webhooks.queue import WebhookQueue
from sharelock.webhooks.relay import Relay
from sharelock.webhooks.sender import Encrypter, Sender

log = logging.getLogger("sharelock.webhooks")


@dataclass
class Webhooks:
    relay: Relay
    sender: Sender

    @classmethod
    def assemble(
        cls,
        settings: Settings,
        client: RedisClient,
        engine: Engine,
        keys: KeyLayer,
        partners: AsyncPartners,
        clock: Clock,
        *,
        encrypt: Encrypter | None = None,
        rng: random.Random | None = None,
        timeout: float | None = None,
        claim_idle_s: float | None = None,
    ) -> Webhooks:
        """`encrypt` seals SETs to partners' `use: enc` keys (signed only without it); `rng`
        is the back-off's random source; `timeout` (default `SHARELOCK_WEBHOOK_TIMEOUT`) and
        `claim_idle_s` (how long an entry is left to a worker before another takes it) are
        for tests."""
        queue = WebhookQueue(client)
        backoff = Backoff(
            settings.webhook_retry_horizon.total_seconds(), rng=rng or random.SystemRandom()
        )
        sender = Sender(
            queue,
            partners,
            keys,
            issuer=settings.issuer,
            timeout=timeout if timeout is not None else settings.webhook_timeout,
            backoff=backoff,
            clock=clock,
            encrypt=encrypt,
            claim_idle_s=claim_idle_s,
        )
        return cls(Relay(engine, queue, clock), sender)

    @property
    def queue(self) -> WebhookQueue:
        return self.relay.queue

    async def run_once(self) -> tuple[int, int]:
        """One relay pass and one send pass: (events queued, pushes made)."""
        queued = await self.relay.run_once()
        pushed = await self.sender.run_once()
        return queued, pushed

    async def aclose(self) -> None:
        await self.sender.aclose()


async def webhooks_forever(webhooks: Webhooks, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await webhooks.run_once()
        except ServiceUnavailable as exc:
            log.warning("webhooks paused: %s", exc)
        except Exception as exc:  # a bug must not stop the task for good; the next pass runs
            log.error("webhook pass failed (%s)", type(exc).__name__)
