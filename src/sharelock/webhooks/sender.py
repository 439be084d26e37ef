"""The sender: takes queued events, signs each as a SET in the HSM, pushes it, and decides.

One pass (`run_once`): due retries go back into the stream; entries a dead or restarted
worker left pending are claimed; new entries are read; each is pushed (a few at a time). Then:

- delivered: acknowledged and erased;
- refused for good (400 with `err`), or its partner no longer has a webhook: dead letter;
- any other failure: waits for its next attempt (`Backoff`), or, past the horizon, dead letter.

The SET is signed ES256 with the HSM's signing key on the HSM thread, and, when the partner's
registered JWKS holds a `use: enc` key and an encrypter is given, encrypted to it. It is signed
again at each attempt (a fresh `iat`, the same `jti`). Nothing here ever fails a share: the
sender runs beside the requests, and a failure only delays a push.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from sharelock.audit import sign_compact
from sharelock.clock import Clock
from sharelock.errors import ServiceUnavailable
from sharelock.flow import AsyncPartners
from sharelock.keys import KeyLayer, KeyLayerError
from sharelock.registry import Partner, encryption_key
from sharelock.webhooks.backoff import Backoff
from sharelock.webhooks.events import SET_TYPE, Event, set_claims
from sharelock.webhooks.push import DELIVERED, Outcome, new_client, push
from sharelock.webhooks.queue import Entry, WebhookQueue, is_dropped

log = logging.getLogger("sharelock.webhooks")

# `(partner, signed SET) -> compact JWE` for partners with a `use: enc` key.
Encrypter = Callable[[Partner, str], str]
BATCH = 50
CONCURRENT_PUSHES = 8


@dataclass(frozen=True, slots=True)
class Attempt:
    """One push, as listeners (tests, metrics) see it: no URL, no token."""

    event_id: int
    type: str
    client_id: str
    jti: str
    at: float
    attempt: int
    outcome: str  # "delivered", a failure code
    next_at: float | None  # when the next attempt is due; None: delivered or dead letter


def consumer_name() -> str:
    """A name of its own for this worker in the consumer group."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"


class Sender:
    def __init__(
        self,
        queue: WebhookQueue,
        partners: AsyncPartners,
        keys: KeyLayer,
        *,
        issuer: str,
        timeout: float,
        backoff: Backoff,
        clock: Clock,
        encrypt: Encrypter | None = None,
        consumer: str | None = None,
        claim_idle_s: float | None = None,
    ) -> None:
        self.queue = queue
        self.partners = partners
        self.keys = keys
        self.issuer = issuer
        self.timeout = timeout
        self.backoff = backoff
        self.clock = clock
        self.encrypt = encrypt
        self.consumer = consumer or consumer_name()
        # An entry held longer than a push can take belongs to a worker that is gone.
        self.claim_idle_s = claim_idle_s if claim_idle_s is not None else max(60.0, 4 * timeout)
        self.on_attempt: list[Callable[[Attempt], None]] = []
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"Sender(consumer={self.consumer!r})"

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = new_client(self.timeout)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run_once(self, limit: int = BATCH) -> int:
        """One pass; how many pushes were made. `StoreUnavailable` when Redis does not answer
        (what was being pushed is retried by the next pass or another worker)."""
        await self.queue.release_due(self.clock.now())
        entries = await self.queue.claim_stalled(
            self.consumer, int(self.claim_idle_s * 1000), limit
        )
        entries += await self.queue.read_new(self.consumer, limit)
        gate = asyncio.Semaphore(CONCURRENT_PUSHES)

        async def one(entry: Entry) -> bool:
            async with gate:
                return await self._handle(entry)

        results = await asyncio.gather(*(one(entry) for entry in entries), return_exceptions=True)
        for result in results:  # every push finished first; then the first failure, if any
            if isinstance(result, BaseException):
                raise result
        return sum(result is True for result in results)

    async def _handle(self, entry: Entry) -> bool:
        if is_dropped(entry):
            await self.queue.finish(entry)
            return False
        event = entry.event
        partner = await self.partners.get(event.client_id)
        now = self.clock.now()
        if partner is None or partner.webhook_url is None:
            # Disabled, or its webhook removed since the event was queued: nothing to push to.
            await self._dead(entry, event.attempted(now, "no_webhook"), now)
            return False
        outcome = await self._push(event, partner, now)
        tried = event.attempted(now, None if outcome.delivered else outcome.reason)
        if outcome.delivered:
            await self.queue.finish(entry)
            self._tell(tried, now, "delivered", None)
            return True
        due = (
            None
            if outcome.permanent
            else self.backoff.next_attempt(tried.attempts, tried.queued_at, now)
        )
        if due is None:
            await self._dead(entry, tried, now)
        else:
            await self.queue.reschedule(entry, tried, due)
            self._tell(tried, now, tried.last_error or "failed", due)
            log.info(
                "webhook %s for %s: attempt %d failed (%s), next in %.0f s",
                event.type,
                event.client_id,
                tried.attempts,
                tried.last_error,
                due - now,
            )
        return True

    async def _dead(self, entry: Entry, event: Event, now: float) -> None:
        await self.queue.bury(entry, event)
        self._tell(event, now, event.last_error or "failed", None)
        log.warning(
            "webhook %s (event %d) for %s is a dead letter (%s): 'sharelock webhooks replay'",
            event.type,
            event.id,
            event.client_id,
            event.last_error,
        )

    async def _push(self, event: Event, partner: Partner, now: float) -> Outcome:
        try:
            token = await self._token(event, partner, now)
        except (KeyLayerError, ServiceUnavailable):
            return Outcome(delivered=False, reason="hsm_unavailable")
        assert partner.webhook_url is not None
        outcome = await push(self._http(), partner.webhook_url, token)
        return DELIVERED if outcome.delivered else outcome

    async def _token(self, event: Event, partner: Partner, now: float) -> str:
        claims = set_claims(event, self.issuer, now)
        signed = await self.keys.run_async(sign_compact, self.keys, claims, SET_TYPE)
        if self.encrypt is not None and encryption_key(partner.jwks) is not None:
            return self.encrypt(partner, signed)
        return signed

    def _tell(self, event: Event, now: float, outcome: str, next_at: float | None) -> None:
        attempt = Attempt(
            event_id=event.id,
            type=event.type,
            client_id=event.client_id,
            jti=event.jti,
            at=now,
            attempt=event.attempts,
            outcome=outcome,
            next_at=next_at,
        )
        for listener in self.on_attempt:
            listener(attempt)
