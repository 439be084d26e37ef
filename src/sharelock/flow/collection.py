"""Collection: credentials and one-time codes, one path from the envelope to the connector.

Both steps go the same way: check the flow's status and its budget of wrong attempts, refuse
an envelope seen before, move the flow to `collecting` (compare-and-set), open the envelope
in the HSM only now, hand the clear values to the connector for that one call, wipe them, then
record what happened (`_after_collection`). They differ in what the envelope holds and what the
connector is asked: `{"login", "password"}` for `login`, `{"otp"}` for `submit_otp` with the
source's session kept from the first step.

Wrong passwords and codes are counted per flow and per data source and login hash across
flows (`Settings.limits`), checked before the envelope is opened or the source contacted.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from sharelock.audit import EventType, login_hash_input
from sharelock.clock import Clock
from sharelock.config import Settings
from sharelock.connectors import CollectionResult, Connector, Outcome, RemembersDevice
from sharelock.envelope import EnvelopeRejected
from sharelock.errors import ServiceUnavailable
from sharelock.flow.checking import answer_checks
from sharelock.flow.envelopes import CREDENTIAL_MEMBERS, OTP_MEMBERS, Envelopes
from sharelock.flow.errors import FlowConflict, FlowError
from sharelock.flow.identity_steps import held_identity, pending_identity
from sharelock.flow.maintenance_offer import MaintenanceOffers
from sharelock.flow.ports import AsyncAudit
from sharelock.flow.record_types import CollectedData, RememberOffer
from sharelock.flow.records import (
    COLLECTED,
    IDENTITY_HELD,
    MAINTENANCE_OFFER,
    REMEMBER_OFFER,
    RESUME,
    Erase,
    Put,
    Records,
)
from sharelock.flow.session import Sessions
from sharelock.flow.state import (
    ACCEPTS_CREDENTIALS,
    ACCEPTS_OTP,
    FlowState,
    Status,
    flow_ref,
)
from sharelock.keys import KeyLayer
from sharelock.ratelimit import RateLimited, RateLimiter

log = logging.getLogger("sharelock.flow")

COLLECTING = frozenset({Status.COLLECTING})
FAILED_MESSAGES = {
    Outcome.INVALID_CREDENTIALS: "The data source did not accept these credentials.",
    Outcome.INVALID_OTP: "The one-time code was not accepted.",
    Outcome.ACCOUNT_LOCKED: "The data source says this account is locked.",
    Outcome.SOURCE_UNAVAILABLE: "The data source is unavailable. Try again later.",
    Outcome.SOURCE_TIMEOUT: "The data source did not answer in time. Try again later.",
    Outcome.INVALID_DATA: "The data source returned data that failed validation.",
    Outcome.DOCUMENT_REFUSED: "The data source gave a document that failed the safety checks.",
    Outcome.DEVICE_TOKEN_REVOKED: "The data source no longer remembers this device. Sign in again.",
}

# What a step does with the clear values once the envelope is open: the connector call.
ConnectorCall = Callable[[dict[str, str]], Awaitable[CollectionResult]]
# A collection with what an account remembers (`submit_remembered`): the caller opens its
# material inside the call, at the last moment, and wipes it there.
RememberedCall = Callable[[], Awaitable[CollectionResult]]


class Collection:
    def __init__(
        self,
        settings: Settings,
        sessions: Sessions,
        records: Records,
        envelopes: Envelopes,
        keys: KeyLayer,
        audit: AsyncAudit,
        connectors: Mapping[str, Connector],
        limiter: RateLimiter,
        offers: MaintenanceOffers,
        clock: Clock,
        *,
        remember_offers: bool = False,
    ) -> None:
        self.settings = settings
        # Whether a share collected with a password ends with the offer to remember the source
        # in an account (docs/accounts.md): only where passkeys can work.
        self.remember_offers = remember_offers
        self.sessions = sessions
        self.records = records
        self.envelopes = envelopes
        self.keys = keys
        self.audit = audit
        self.connectors = connectors
        self.limiter = limiter
        self.offers = offers
        self.clock = clock
        # Told of each connector call: data source id, outcome, seconds (the metrics).
        self.on_collection: list[Callable[[str, str, float], None]] = []

    # -- the two steps ------------------------------------------------------------------

    async def submit_credentials(
        self, flow: FlowState, data_source: str, envelope: str
    ) -> dict[str, Any]:
        connector = self.connectors.get(data_source)
        if connector is None or not set(flow.request.collect_scopes) <= set(connector.info.scopes):
            raise FlowError("this data source cannot provide the requested data")
        self.sessions.check_status(flow, ACCEPTS_CREDENTIALS)
        await self._check_flow_attempts(flow)
        # Trying again (here or at another source) is the answer "no" to a pending offer.
        await self.records.delete(MAINTENANCE_OFFER, flow.flow_id)
        await self.envelopes.remember(envelope, until=flow.expires_at)
        # Kept as received, in this request only (never in Redis: no other tab's JWE to take
        # instead, nothing left behind by a crash); the only clear copy is made in `_attempt`.
        stored = envelope.encode("ascii", "replace")
        flow = await self.sessions.transition(
            flow,
            ACCEPTS_CREDENTIALS,
            # A one-time-code step left by an earlier attempt ends with this one.
            along=[Erase(RESUME, flow.flow_id)],
            status=Status.COLLECTING,
            data_source=data_source,
            collecting_since=self.clock.now(),
            attempts=flow.attempts + 1,
        )

        # A source that remembers devices gives a token for the offer to remember it; the
        # token is forgotten at the source if the person says no (`accounts.remembered`).
        rememberer = (
            connector
            if self.remember_offers
            and connector.info.remembers_device
            and isinstance(connector, RemembersDevice)
            else None
        )

        async def log_in(values: dict[str, str]) -> CollectionResult:
            scopes = flow.request.collect_scopes
            if rememberer is not None:
                return await rememberer.login(
                    values["login"], values["password"], scopes, remember=True
                )
            return await connector.login(values["login"], values["password"], scopes)

        async def undo() -> None:
            await self._back(flow, Status.AWAITING_CREDENTIALS)

        return await self._attempt(
            flow, connector, stored, CREDENTIAL_MEMBERS, log_in, undo, identify=True
        )

    async def submit_otp(self, flow: FlowState, envelope: str) -> dict[str, Any]:
        if flow.status not in ACCEPTS_OTP:
            raise FlowConflict(f"not possible while the flow is {flow.status.value}")
        connector = self.connectors.get(flow.data_source or "")
        if connector is None:
            raise FlowConflict("no data source chosen")
        await self._check_flow_attempts(flow)
        await self.envelopes.remember(envelope, until=flow.expires_at)
        flow = await self.sessions.transition(
            flow, ACCEPTS_OTP, status=Status.COLLECTING, collecting_since=self.clock.now()
        )
        resume = await self.records.take(RESUME, flow.flow_id)
        if resume is None:
            await self._back(flow, Status.AWAITING_CREDENTIALS)
            raise FlowConflict("the one-time code step has expired; log in again")

        async def send_code(values: dict[str, str]) -> CollectionResult:
            return await connector.submit_otp(resume, values["otp"], flow.request.collect_scopes)

        async def undo() -> None:
            # A broken envelope is not a wrong code: the step stays as it was.
            await self.records.put(RESUME, flow.flow_id, resume, until=flow.expires_at)
            await self._back(flow, Status.OTP_REQUIRED)

        raw = envelope.encode("ascii", "replace")
        return await self._attempt(flow, connector, raw, OTP_MEMBERS, send_code, undo)

    async def submit_remembered(
        self, flow: FlowState, data_source: str, login_hash: str, call: RememberedCall
    ) -> dict[str, Any]:
        """A one-click share: the same step as `submit_credentials`, with what an account
        remembers instead of typed credentials (`call` opens it and calls the connector). The
        same status check, budgets of wrong attempts, `credentials_received` row and outcome
        handling; no maintenance or remember offer (nothing was typed)."""
        connector = self.connectors.get(data_source)
        if connector is None or not set(flow.request.collect_scopes) <= set(connector.info.scopes):
            raise FlowError("this data source cannot provide the requested data")
        self.sessions.check_status(flow, ACCEPTS_CREDENTIALS)
        await self._check_flow_attempts(flow)
        await self._check_login_attempts(flow, data_source, login_hash)
        flow = await self.sessions.transition(
            flow,
            ACCEPTS_CREDENTIALS,
            status=Status.COLLECTING,
            data_source=data_source,
            login_hash=login_hash,
            collecting_since=self.clock.now(),
            attempts=flow.attempts + 1,
        )
        await self.audit.record(
            EventType.CREDENTIALS_RECEIVED, outcome="remembered", **_row(flow, data_source)
        )

        async def remembered(_: dict[str, str]) -> CollectionResult:
            return await call()

        try:
            result = await self._call(connector, remembered, {})
        except ServiceUnavailable:
            await self._back(flow, Status.AWAITING_CREDENTIALS)
            raise
        return await self._after_collection(flow, connector, result, None)

    # -- the one path -------------------------------------------------------------------

    async def _attempt(
        self,
        flow: FlowState,
        connector: Connector,
        envelope: bytes,
        members: dict[str, int],
        call: ConnectorCall,
        undo: Callable[[], Awaitable[None]],
        *,
        identify: bool = False,
    ) -> dict[str, Any]:
        try:
            opened = await self.envelopes.open(envelope)
        except EnvelopeRejected:
            await undo()
            raise
        result: CollectionResult | None = None
        with opened:  # the clear bytes are wiped when the block ends
            values = opened.json_object(members)
            try:
                if identify:
                    flow, result = await self._identify(flow, connector, values["login"])
                if result is None:
                    result = await self._call(connector, call, values)
            finally:
                values.clear()
        kept = envelope if identify else None  # what a maintenance offer would keep
        return await self._after_collection(flow, connector, result, kept)

    async def _identify(
        self, flow: FlowState, connector: Connector, login: str
    ) -> tuple[FlowState, CollectionResult | None]:
        """The login's keyed hash (the audit pseudonym), its budget of wrong attempts, and the
        `credentials_received` row; or a result without asking the source."""
        try:
            message = login_hash_input(connector.info.id, login)
        except ValueError:
            # Blank once normalised: nobody to log in as, nothing to ask the source. A wrong
            # login like any other for the person.
            return flow, CollectionResult(Outcome.INVALID_CREDENTIALS)
        login_hash = await self.keys.run_async(self.keys.keyed_hash, message)
        try:
            await self._check_login_attempts(flow, connector.info.id, login_hash)
        except RateLimited:
            await self._back(flow, Status.AWAITING_CREDENTIALS)
            raise
        flow = flow.with_(login_hash=login_hash)
        row = _row(flow, connector.info.id)
        await self.audit.record(EventType.CREDENTIALS_RECEIVED, outcome="ok", **row)
        return flow, None

    async def _call(
        self, connector: Connector, call: ConnectorCall, values: dict[str, str]
    ) -> CollectionResult:
        started = time.perf_counter()
        try:
            result = await call(values)
        except ServiceUnavailable:
            # The broker's own HSM or database, in a call that opens an account's material
            # (`submit_remembered`): a 503, not the source's fault.
            raise
        except Exception:
            # The type is all that is logged: a connector's exception could quote anything.
            log.error("connector %s raised; treated as unavailable", connector.info.id)
            result = CollectionResult(Outcome.SOURCE_UNAVAILABLE)
        elapsed = time.perf_counter() - started
        for listener in self.on_collection:
            listener(connector.info.id, result.outcome.value, elapsed)
        return result

    async def _back(self, flow: FlowState, status: Status) -> None:
        await self.sessions.transition(flow, COLLECTING, status=status)

    async def _after_collection(
        self,
        flow: FlowState,
        connector: Connector,
        result: CollectionResult,
        envelope: bytes | None,
    ) -> dict[str, Any]:
        common = _row(flow, connector.info.id)
        if result.outcome in (Outcome.INVALID_CREDENTIALS, Outcome.INVALID_OTP):
            await self._count_wrong_attempt(flow, connector.info.id)
        retry_otp = result.outcome in (Outcome.OTP_REQUIRED, Outcome.INVALID_OTP)
        if retry_otp and result.resume_state is not None:
            await self.records.put(RESUME, flow.flow_id, result.resume_state, until=flow.expires_at)
            await self.sessions.transition(
                flow,
                COLLECTING,
                status=Status.OTP_REQUIRED,
                login_hash=flow.login_hash,
                last_outcome=result.outcome.value,
            )
            if result.outcome is Outcome.INVALID_OTP:
                return {
                    "status": "otp_required",
                    "reason": result.outcome.value,
                    "message": FAILED_MESSAGES[Outcome.INVALID_OTP],
                }
            return {"status": "otp_required"}
        if result.outcome is Outcome.COLLECTED:
            await self.audit.record(EventType.COLLECTION_SUCCEEDED, outcome="collected", **common)
            now = self.clock.now()
            today = datetime.fromtimestamp(now, UTC).date()
            kept, answers = answer_checks(flow.request, result.data, today)
            held = held_identity(flow.request, result.data)  # for identity verification
            result.data.clear()  # what only the checks needed goes here, before any store
            # Written by the transition's script, only if it happens: no collected data for a
            # flow that did not become `collected`.
            collected = CollectedData(
                kept, collected_at=now, checks=answers, identity=pending_identity(flow.request)
            )
            along: list[Put[Any]] = [Put(COLLECTED, flow.flow_id, collected, until=flow.expires_at)]
            if held is not None:
                along.append(Put(IDENTITY_HELD, flow.flow_id, held, until=flow.expires_at))
            remember = self._remember_offer(flow, connector, result, envelope)
            if remember is not None:
                along.append(remember)
            await self.sessions.transition(
                flow,
                COLLECTING,
                along=along,
                status=Status.COLLECTED,
                login_hash=flow.login_hash,
                last_outcome="collected",
                extra={**flow.extra, "remember_offer": remember is not None},
            )
            return {"status": "collected"}
        await self.audit.record(
            EventType.COLLECTION_FAILED,
            outcome=result.outcome.value,
            detail_code=result.detail,  # a refused document's reason; never a value
            **common,
        )
        offer = await self.offers.offer(flow, connector, result, envelope)
        await self.sessions.transition(
            flow,
            COLLECTING,
            status=Status.AWAITING_CREDENTIALS,
            login_hash=flow.login_hash,
            last_outcome=result.outcome.value,
        )
        return {
            "status": "failed",
            "reason": result.outcome.value,
            **({"detail": result.detail} if result.detail else {}),
            "message": FAILED_MESSAGES.get(result.outcome, "The collection failed."),
            "maintenance_offer": offer,
            "attempts_left": await self.attempts_left(flow),
        }

    def _remember_offer(
        self,
        flow: FlowState,
        connector: Connector,
        result: CollectionResult,
        envelope: bytes | None,
    ) -> Put[RememberOffer] | None:
        """What the offer to remember this source would keep, within the session: the
        source's device token, else the credential JWE as received; nothing after a one-click
        share (no envelope, no new token) or where accounts cannot work."""
        token = result.device_token
        result.device_token = None
        if not self.remember_offers or flow.login_hash is None:
            return None
        if token is None and envelope is None:
            return None
        kept = None if token is not None or envelope is None else envelope.decode("ascii")
        offer = RememberOffer(connector.info.id, flow.login_hash, token, kept)
        return Put(REMEMBER_OFFER, flow.flow_id, offer, until=flow.expires_at)

    # -- wrong passwords and codes --------------------------------------------------------
    # Counted per flow (a share may try a few, then says so) and per data source and login
    # hash across flows (the broker must not be a way to guess someone's password, nor to get
    # them locked out at their bank). Checked before the envelope is opened or the source is
    # contacted; counted only when the source says the password or code was wrong.

    async def attempts_left(self, flow: FlowState) -> int:
        if flow.attempts == 0:
            # A wrong attempt is counted only after a collection, which the flow's transition
            # to `collecting` counts first (`attempts`): none yet, so the whole budget, without
            # asking Redis.
            return self.limiter.amount("wrong_passwords_per_flow")
        return await self.limiter.remaining("wrong_passwords_per_flow", flow.flow_id)

    async def _check_flow_attempts(self, flow: FlowState) -> None:
        try:
            await self.limiter.check("wrong_passwords_per_flow", flow.flow_id)
        except RateLimited as refused:
            await self._refused(flow, refused, data_source=flow.data_source)

    async def _check_login_attempts(self, flow: FlowState, source: str, login_hash: str) -> None:
        try:
            await self.limiter.check("wrong_passwords_per_login", source, login_hash)
        except RateLimited as refused:
            await self._refused(flow, refused, data_source=source, login_hash=login_hash)

    async def _count_wrong_attempt(self, flow: FlowState, source: str) -> None:
        # `hit` refuses once the window is full, which only means this failure was already
        # over the limit: the next attempt is refused by the checks above.
        with contextlib.suppress(RateLimited):
            await self.limiter.hit("wrong_passwords_per_flow", flow.flow_id)
        if flow.login_hash:
            with contextlib.suppress(RateLimited):
                await self.limiter.hit("wrong_passwords_per_login", source, flow.login_hash)

    async def _refused(
        self,
        flow: FlowState,
        refused: RateLimited,
        *,
        data_source: str | None,
        login_hash: str | None = None,
    ) -> NoReturn:
        await refuse_attempt(
            self.limiter,
            self.audit,
            refused,
            (flow.flow_id,),
            **{**_row(flow, data_source), "login_hash": login_hash},
        )


def _row(flow: FlowState, data_source: str | None) -> dict[str, str | None]:
    """An audit row's common fields for this flow: the partner, the data source, the login's
    pseudonym, the flow's reference, the browser's family and device type."""
    return {
        "client_id": flow.request.client_id,
        "data_source": data_source,
        "login_hash": flow.login_hash,
        "flow_ref": flow_ref(flow.flow_id),
        "browser_family": flow.browser_family,
        "device_type": flow.device_type,
    }


async def refuse_attempt(
    limiter: RateLimiter,
    audit: AsyncAudit,
    refused: RateLimited,
    key: tuple[str, ...],
    **row: str | None,
) -> NoReturn:
    """A person stopped by a wrong-attempt limit (here, or signing in for their rights):
    the first refusal of its window for `key` is audited (not every one: a stranger hammering
    must not turn each request into a 13-month row), then they are told why."""
    if await limiter.first_refusal(refused.limit, *key):
        await audit.record(
            EventType.RATE_LIMITED,
            actor="person",
            outcome="refused",
            detail_code=refused.limit,
            **row,
        )
    raise RateLimited(
        refused.limit,
        refused.retry_after,
        "too_many_attempts",
        "too many wrong passwords or codes; wait before trying again",
    ) from None
