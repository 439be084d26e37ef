"""Proof of control of a data-source account, for a person's rights without an account.

Knowing someone's customer number is not being them, so a login alone identifies nobody. The
person proves who they are the way the consent screen makes them: they sign in to the data
source again, their credentials encrypted in the page to the broker's key (a compact JWE,
opened in the HSM only when the connector logs in, exactly as in `ConsentService._collect`).
Only when the connector's login succeeds does the broker hand out a **proof**: a random
256-bit handle, a bearer secret carried in JSON bodies (never in a URL), that stands for "the
holder controls this login at this data source" for `PROOF_LIFETIME`.

What Redis holds, sealed like everything else and keyed by the handle's SHA-256 (so a copy of
Redis does not give a usable handle):

- `rights-proof`: the data source and the login's keyed hash; never the login.
- `rights-pending`: while the source waits for a one-time code, the connector's resume state
  (the source's session), the data source and the login hash; taken (GETDEL) by the code.

The connector is asked for the smallest scope set the source has (its first scope), because
it can only log in by collecting; what it collects is cleared at once, never stored and never
returned. Every attempt leaves a `rights_proof` audit row (outcome `verified`, `otp_required`
or `failed` with the connector's outcome as `detail_code`) written before any proof is
stored: if the row cannot be written, no proof exists (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sharelock.audit import EventType, login_hash_input
from sharelock.clock import utc
from sharelock.config import Settings
from sharelock.connectors import CollectionResult, Connector, Outcome
from sharelock.envelope import EnvelopeRejected
from sharelock.flow import (
    CREDENTIAL_MEMBERS,
    FAILED_MESSAGES,
    OTP_MEMBERS,
    RIGHTS_PENDING,
    RIGHTS_PROOF,
    AsyncAudit,
    Envelopes,
    Records,
    RightsPending,
    RightsProof,
    refuse_attempt,
)
from sharelock.keys import KeyLayer
from sharelock.oauth import digest, new_handle
from sharelock.ratelimit import RateLimited, RateLimiter
from sharelock.rights.service import Subject, UnknownDataSource

log = logging.getLogger("sharelock.rights")

# Long enough to look at the traces, download a copy and ask for erasure in one visit; short
# enough that a proof left in a browser's memory or a shared computer is soon worth nothing.
# Capped by the session's lifetime and by what the store allows (`proof_lifetime`).
PROOF_LIFETIME = timedelta(minutes=10)
# Time to read a one-time code from a phone and type it; the source's own session (the
# connector's resume state) rarely outlives a few minutes anyway.
PENDING_LIFETIME = timedelta(minutes=5)
# Wrong one-time codes accepted before the pending proof is dropped: the source has its own
# limit, this one keeps the broker from being a tireless code-guessing relay.
MAX_OTP_ATTEMPTS = 3
# 32 random bytes, URL-safe base64: 43 characters.
HANDLE_BYTES = 32


class ProofNotFound(Exception):
    """No proof (or pending proof) under this handle: never issued, used up, or expired."""


def _valid_handle(handle: str) -> bool:
    # Only what `new_handle` makes is looked up, so a malformed value never reaches a key name.
    return 20 <= len(handle) <= 128 and all(c.isalnum() or c in "-_" for c in handle)


class ProofService:
    def __init__(
        self,
        settings: Settings,
        keys: KeyLayer,
        records: Records,
        envelopes: Envelopes,
        audit: AsyncAudit,
        connectors: Mapping[str, Connector],
        limiter: RateLimiter,
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        self.keys = keys
        self.records = records
        self.envelopes = envelopes
        self.audit = audit
        self.connectors = connectors

    def proof_lifetime(self) -> timedelta:
        return RIGHTS_PROOF.lifetime(self.settings.retention)

    def pending_lifetime(self) -> timedelta:
        return min(PENDING_LIFETIME, self.proof_lifetime())

    # -- who asks -----------------------------------------------------------------------

    async def subject(self, handle: str) -> Subject:
        """The verified data source and login hash a live proof stands for."""
        if not _valid_handle(handle):
            raise ProofNotFound()
        held = await self.records.get(RIGHTS_PROOF, digest(handle))
        if held is None:
            raise ProofNotFound()
        return Subject("proof", held.data_source, held.login_hash)

    # -- signing in again -----------------------------------------------------------------

    async def start(self, data_source: str, envelope: str) -> dict[str, Any]:
        """Open the credential JWE in the HSM, log in to the source, and answer `verified`
        (with the proof), `otp_required` (with the pending handle) or `failed`."""
        connector = self.connectors.get(data_source)
        if connector is None:
            raise UnknownDataSource("unknown data source")
        await self.envelopes.remember(envelope)
        opened = await self.envelopes.open(envelope.encode("ascii", "replace"))
        with opened:  # the clear bytes are wiped when the block ends
            credentials = opened.json_object(CREDENTIAL_MEMBERS)
            try:
                message = login_hash_input(connector.info.id, credentials["login"])
            except ValueError:
                # A login that is blank once normalised: nobody to log in as.
                credentials.clear()
                return await self._failed(connector, None, Outcome.INVALID_CREDENTIALS)
            login_hash = await self.keys.run_async(self.keys.keyed_hash, message)
            try:
                # The same budget as the consent screen's: signing in here must not be a
                # second way to guess a password or get someone locked out at their bank.
                await self._check_attempts(connector, login_hash)
            except RateLimited:
                credentials.clear()
                raise
            try:
                result = await connector.login(
                    credentials["login"], credentials["password"], _smallest(connector)
                )
            except Exception:
                log.error("connector %s raised; treated as unavailable", connector.info.id)
                result = CollectionResult(Outcome.SOURCE_UNAVAILABLE)
            finally:
                credentials.clear()
        return await self._after_login(connector, login_hash, result, attempts=0)

    async def finish_otp(self, pending: str, envelope: str) -> dict[str, Any]:
        """The one-time code for a pending proof: `verified`, `otp_required` again (a wrong
        code, with the same pending handle, at most `MAX_OTP_ATTEMPTS` times) or `failed`."""
        if not _valid_handle(pending):
            raise ProofNotFound()
        await self.envelopes.remember(envelope)
        record = digest(pending)
        expires = await self.records.expires(RIGHTS_PENDING, record)
        held = await self.records.take(RIGHTS_PENDING, record)  # one code, one taker
        if held is None or expires is None:
            raise ProofNotFound()
        connector = self.connectors.get(held.data_source)
        if connector is None:
            raise ProofNotFound()
        try:
            resume = base64.b64decode(held.resume, validate=True)
        except (binascii.Error, ValueError):
            raise ProofNotFound() from None
        login_hash = held.login_hash
        attempts = held.attempts
        try:
            opened = await self.envelopes.open(envelope.encode("ascii", "replace"))
        except EnvelopeRejected:
            # A broken envelope is not a wrong code: the pending proof stays as it was.
            await self._keep_pending(pending, held, expires)
            raise
        with opened:
            otp = opened.json_object(OTP_MEMBERS)
            try:
                result = await connector.submit_otp(resume, otp["otp"], _smallest(connector))
            except Exception:
                log.error("connector %s raised; treated as unavailable", connector.info.id)
                result = CollectionResult(Outcome.SOURCE_UNAVAILABLE)
            finally:
                otp.clear()
        return await self._after_login(
            connector, login_hash, result, attempts=attempts + 1, pending=(pending, expires)
        )

    # -- helpers --------------------------------------------------------------------------

    async def _check_attempts(self, connector: Connector, login_hash: str) -> None:
        """`RateLimited` (`too_many_attempts`) once this login has had its wrong passwords
        or codes for the window; the first refusal of the window is audited."""
        source = connector.info.id
        try:
            await self.limiter.check("wrong_passwords_per_login", source, login_hash)
        except RateLimited as refused:
            await refuse_attempt(
                self.limiter,
                self.audit,
                refused,
                (source, login_hash),
                data_source=source,
                login_hash=login_hash,
            )

    async def _keep_pending(self, pending: str, held: RightsPending, expires: datetime) -> bool:
        if expires.timestamp() <= self.records.clock.now():
            return False
        await self.records.put(RIGHTS_PENDING, digest(pending), held, until=expires.timestamp())
        return True

    async def _after_login(
        self,
        connector: Connector,
        login_hash: str,
        result: CollectionResult,
        *,
        attempts: int,
        pending: tuple[str, datetime] | None = None,
    ) -> dict[str, Any]:
        # Collected only because a login is a collection: not one value is kept.
        result.data.clear()
        outcome = result.outcome
        if outcome in (Outcome.INVALID_CREDENTIALS, Outcome.INVALID_OTP):
            with contextlib.suppress(RateLimited):  # spent: the next attempt is refused
                await self.limiter.hit("wrong_passwords_per_login", connector.info.id, login_hash)
        common = {
            "actor": "person",
            "data_source": connector.info.id,
            "login_hash": login_hash,
        }
        if outcome is Outcome.COLLECTED:
            await self.audit.record(EventType.RIGHTS_PROOF, outcome="verified", **common)
            lifetime = self.proof_lifetime()
            handle = new_handle(HANDLE_BYTES)
            proof = RightsProof(data_source=connector.info.id, login_hash=login_hash)
            await self.records.put(RIGHTS_PROOF, digest(handle), proof)
            return {
                "status": "verified",
                "proof": handle,
                "expires_in": int(lifetime.total_seconds()),
            }
        wants_code = outcome in (Outcome.OTP_REQUIRED, Outcome.INVALID_OTP)
        if wants_code and result.resume_state is not None and attempts < MAX_OTP_ATTEMPTS:
            await self.audit.record(
                EventType.RIGHTS_PROOF,
                outcome="otp_required",
                detail_code=outcome.value,
                **common,
            )
            held = RightsPending(
                data_source=connector.info.id,
                login_hash=login_hash,
                resume=base64.b64encode(result.resume_state).decode("ascii"),
                attempts=attempts,
            )
            if pending is None:
                handle = new_handle(HANDLE_BYTES)
                expires = utc(self.records.clock) + self.pending_lifetime()
            else:
                handle, expires = pending
            if await self._keep_pending(handle, held, expires):
                answer: dict[str, Any] = {"status": "otp_required", "pending": handle}
                if outcome is Outcome.INVALID_OTP:
                    answer.update(reason=outcome.value, message=FAILED_MESSAGES[outcome])
                return answer
            outcome = Outcome.SOURCE_TIMEOUT  # the code came too late: sign in again
        return await self._failed(connector, login_hash, outcome)

    async def _failed(
        self, connector: Connector, login_hash: str | None, outcome: Outcome
    ) -> dict[str, Any]:
        await self.audit.record(
            EventType.RIGHTS_PROOF,
            actor="person",
            data_source=connector.info.id,
            login_hash=login_hash,
            outcome="failed",
            detail_code=outcome.value,
        )
        return {
            "status": "failed",
            "reason": outcome.value,
            "message": FAILED_MESSAGES.get(outcome, "The sign-in did not succeed."),
        }


def _smallest(connector: Connector) -> tuple[str, ...]:
    """The least the connector can be asked to collect: the source's first scope."""
    return connector.info.scopes[:1]
