"""The person's side of a share: start, choose a source, credentials, one-time code, review,
decision.

Every personal value lives in Redis only sealed, under keys that expire no later than the
session (`FlowState.expires_at`, fixed at creation). The credential JWE is stored as received and
opened only right before the connector logs in; the clear credentials exist inside that call.
After a failure that repairing the connector could fix, the same JWE waits (kind
`maintenance-offer`, within the session) for the person's answer to keeping the credentials for
maintenance (`answer_maintenance`; `sharelock.maintenance`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, NoReturn
from urllib.parse import urlencode

from sharelock.audit import EventType, describe_user_agent, login_hash_input
from sharelock.audit.receipts import issue_receipt
from sharelock.config import Settings
from sharelock.connectors.base import CollectionResult, Connector, Outcome
from sharelock.envelope import EnvelopeRejected, OpenedSecret, open_envelope
from sharelock.flow import expiry
from sharelock.flow.errors import FlowConflict, FlowError, FlowForbidden, FlowNotFound
from sharelock.flow.ports import AsyncAudit, AsyncPartners, eligible_sources, partner_view
from sharelock.flow.state import (
    ACCEPTS_CREDENTIALS,
    ACCEPTS_DECISION,
    ACCEPTS_OTP,
    FlowState,
    Status,
)
from sharelock.keys import KeyLayer
from sharelock.maintenance import MaintenanceVault, new_maintenance_id, offers_maintenance
from sharelock.oauth.authorization import AuthorizationRequest
from sharelock.oauth.tokens import digest, new_handle
from sharelock.ratelimit import RateLimited, RateLimiter
from sharelock.scopes import FIELD_LABELS, OPTIONAL_FIELDS, SCOPE_FIELDS
from sharelock.store import SealedStore

log = logging.getLogger("sharelock.flow")

CREDENTIAL_MEMBERS = {"login": 256, "password": 1024}
# Redis kind of the JWE kept, within the session, for the answer to the maintenance offer.
MAINTENANCE_OFFER = "maintenance-offer"
OTP_MEMBERS = {"otp": 32}
_FAILED_MESSAGES = {
    Outcome.INVALID_CREDENTIALS: "The data source did not accept these credentials.",
    Outcome.INVALID_OTP: "The one-time code was not accepted.",
    Outcome.ACCOUNT_LOCKED: "The data source says this account is locked.",
    Outcome.SOURCE_UNAVAILABLE: "The data source is unavailable. Try again later.",
    Outcome.SOURCE_TIMEOUT: "The data source did not answer in time. Try again later.",
    Outcome.INVALID_DATA: "The data source returned data that failed validation.",
}


def flow_ref(flow_id: str) -> str:
    """What the audit trail keeps of a flow id: enough to group its rows, not to act on it."""
    return digest(flow_id)[:32]


@dataclass(frozen=True, slots=True)
class StartedFlow:
    flow_id: str
    session_secret: str
    expires_at: float


class ConsentService:
    def __init__(
        self,
        settings: Settings,
        store: SealedStore,
        keys: KeyLayer,
        partners: AsyncPartners,
        audit: AsyncAudit,
        connectors: Mapping[str, Connector],
        maintenance: MaintenanceVault | None = None,
        *,
        limiter: RateLimiter,
    ) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.partners = partners
        self.audit = audit
        self.connectors = connectors
        # Without a vault, no failure offers to keep the credentials for maintenance.
        self.maintenance = maintenance
        self.limiter = limiter

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _expiry(flow: FlowState) -> datetime:
        return datetime.fromtimestamp(flow.expires_at, UTC)

    async def load(self, flow_id: str, session_secret: str | None) -> FlowState:
        if not flow_id or len(flow_id) > 64:
            raise FlowNotFound("no such flow, or its session has expired")
        raw = await self.store.get_json("flow", flow_id)
        if raw is None:
            raise FlowNotFound("no such flow, or its session has expired")
        flow = FlowState.from_json(raw)
        if flow.expires_at <= time.time():
            raise FlowNotFound("the session has expired")
        presented = digest(session_secret) if session_secret else ""
        if not hmac.compare_digest(presented, flow.session_hash):
            raise FlowForbidden("this flow belongs to another browser session")
        return flow

    async def _transition(
        self, flow: FlowState, allowed: frozenset[Status], **changes: Any
    ) -> FlowState:
        """Compare-and-set on the status, so two tabs cannot run the same step twice."""

        def apply(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None:
                raise FlowNotFound("the session has expired")
            state = FlowState.from_json(current)
            if state.status not in allowed and not self._stale_collection(state):
                raise FlowConflict(f"not possible while the flow is {state.status.value}")
            return state.with_(**changes).to_json()

        updated = await self.store.update_json("flow", flow.flow_id, apply)
        if updated is None:
            raise FlowNotFound("the session has expired")
        return FlowState.from_json(updated)

    def _stale_collection(self, flow: FlowState) -> bool:
        # A collection abandoned by a crashed worker must not lock the person out.
        limit = 3 * self.settings.connector_timeout + 5
        return (
            flow.status == Status.COLLECTING
            and flow.collecting_since is not None
            and time.time() - flow.collecting_since > limit
        )

    # -- wrong passwords and codes ---------------------------------------------------------
    # Counted per flow (a share may try a few, then says so) and per data source and login
    # hash across flows (the broker must not be a way to guess someone's password, nor to get
    # them locked out at their bank). Checked before the envelope is opened or the source is
    # contacted; counted only when the source says the password or code was wrong.

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
        """Audit the first refusal of its window (a person was stopped), then tell them."""
        if await self.limiter.first_refusal(refused.limit, flow.flow_id):
            await self.audit.record(
                EventType.RATE_LIMITED,
                client_id=flow.request.client_id,
                data_source=data_source,
                login_hash=login_hash,
                flow_ref=flow_ref(flow.flow_id),
                browser_family=flow.browser_family,
                device_type=flow.device_type,
                actor="person",
                outcome="refused",
                detail_code=refused.limit,
            )
        raise RateLimited(
            refused.limit,
            refused.retry_after,
            "too_many_attempts",
            "too many wrong passwords or codes; wait before trying again",
        )

    async def attempts_left(self, flow: FlowState) -> int:
        return await self.limiter.remaining("wrong_passwords_per_flow", flow.flow_id)

    async def _open(self, envelope: bytes) -> OpenedSecret:
        limit = self.settings.max_envelope_bytes
        return await self.keys.run_async(
            lambda: open_envelope(envelope, self.keys, max_bytes=limit)
        )

    async def _erase(self, flow_id: str) -> None:
        for kind in ("credentials", "resume", "data", MAINTENANCE_OFFER):
            await self.store.delete(kind, flow_id)

    # -- start --------------------------------------------------------------------------

    async def start(self, request: AuthorizationRequest, user_agent: str | None) -> StartedFlow:
        now = time.time()
        flow_id = new_handle(24)
        # Always a fresh secret, issued for this flow alone: adopting a value the browser sent
        # would let whoever planted it (session fixation) read this flow's data.
        secret = new_handle(32)
        browser, device = describe_user_agent(user_agent)
        flow = FlowState(
            flow_id=flow_id,
            request=request,
            session_hash=digest(secret),
            created_at=now,
            expires_at=now + self.settings.retention.session.total_seconds(),
            browser_family=browser,
            device_type=device,
        )
        # The session first: if Redis refuses it (down, full), no "flow_started" row claims a
        # flow that never existed (checklist 39/42); if the row cannot be written, the session
        # is taken back.
        member = expiry.member(flow_ref(flow_id), request.client_id)
        await self.store.put_json("flow", flow_id, flow.to_json(), expire_at=self._expiry(flow))
        try:
            await self.store.index_add(expiry.INDEX, member, self._expiry(flow))
            await self.audit.record(
                EventType.FLOW_STARTED,
                client_id=request.client_id,
                flow_ref=flow_ref(flow_id),
                browser_family=browser,
                device_type=device,
                outcome="ok",
            )
        except Exception:
            await self.store.delete("flow", flow_id)
            await self.store.index_remove(expiry.INDEX, member)
            raise
        return StartedFlow(flow_id, secret, flow.expires_at)

    # -- the screen's JSON API ------------------------------------------------------------

    async def describe(self, flow: FlowState) -> dict[str, Any]:
        partner = await self.partners.get(flow.request.client_id)
        if partner is None:
            raise FlowNotFound("the partner of this flow is no longer registered")
        scopes = flow.request.scopes
        return {
            "flow_id": flow.flow_id,
            "status": flow.status.value,
            "partner": dict(partner_view(partner)),
            "scopes": list(scopes),
            "fields": [
                {
                    "scope": scope,
                    "field": name,
                    "label": FIELD_LABELS[name],
                    "optional": (scope, name) in OPTIONAL_FIELDS,
                }
                for scope in scopes
                for name in SCOPE_FIELDS[scope]
            ],
            "data_sources": eligible_sources(self.connectors, scopes),
            "data_source": flow.data_source,
            "last_outcome": flow.last_outcome,
            "maintenance_offer": await self.store.exists(MAINTENANCE_OFFER, flow.flow_id),
            # Wrong passwords or codes this share may still try (`Settings.limits`).
            "attempts_left": await self.attempts_left(flow),
            "created_at": datetime.fromtimestamp(flow.created_at, UTC).isoformat(),
            "expires_at": self._expiry(flow).isoformat(),
            "expires_in": max(0, int(flow.expires_at - time.time())),
            "retention": {
                name: int(value.total_seconds())
                for name, value in self.settings.retention.model_dump().items()
            },
        }

    async def _remember_envelope(self, flow: FlowState, envelope: str) -> None:
        """One envelope, one use: the same JWE sent twice, to this flow or another, is refused
        before it is opened (checklist A.17)."""
        if not envelope or len(envelope) > self.settings.max_envelope_bytes:
            raise EnvelopeRejected()
        fresh = await self.store.put_new(
            "envelope-seen", digest(envelope), b"1", expire_at=self._expiry(flow)
        )
        if not fresh:
            raise EnvelopeRejected()

    async def submit_credentials(
        self, flow: FlowState, data_source: str, envelope: str
    ) -> dict[str, Any]:
        connector = self.connectors.get(data_source)
        if connector is None or not set(flow.request.scopes) <= set(connector.info.scopes):
            raise FlowError("this data source cannot provide the requested data")
        if flow.status not in ACCEPTS_CREDENTIALS and not self._stale_collection(flow):
            raise FlowConflict(f"not possible while the flow is {flow.status.value}")
        await self._check_flow_attempts(flow)
        # Trying again (here or at another source) is the answer "no" to a pending offer.
        await self.store.delete(MAINTENANCE_OFFER, flow.flow_id)
        await self._remember_envelope(flow, envelope)
        # Stored as received; from here on the only clear copy is made inside `_collect`.
        await self.store.put(
            "credentials",
            flow.flow_id,
            envelope.encode("ascii", "replace"),
            expire_at=self._expiry(flow),
        )
        flow = await self._transition(
            flow,
            ACCEPTS_CREDENTIALS,
            status=Status.COLLECTING,
            data_source=data_source,
            collecting_since=time.time(),
            attempts=flow.attempts + 1,
        )
        await self.store.delete("resume", flow.flow_id)
        return await self._collect(flow, connector)

    async def _collect(self, flow: FlowState, connector: Connector) -> dict[str, Any]:
        stored = await self.store.take("credentials", flow.flow_id)
        if stored is None:
            await self._transition(
                flow, frozenset({Status.COLLECTING}), status=Status.AWAITING_CREDENTIALS
            )
            raise FlowConflict("the credentials are no longer available; send them again")
        try:
            opened = await self._open(stored)
        except EnvelopeRejected:
            await self._transition(
                flow, frozenset({Status.COLLECTING}), status=Status.AWAITING_CREDENTIALS
            )
            raise
        with opened:
            credentials = opened.json_object(CREDENTIAL_MEMBERS)
            try:
                message = login_hash_input(connector.info.id, credentials["login"])
            except ValueError:
                # A login that is blank once normalised: nobody to log in as, and nothing to
                # ask the source. A wrong login like any other for the person.
                credentials.clear()
                return await self._after_collection(
                    flow, connector, CollectionResult(Outcome.INVALID_CREDENTIALS)
                )
            login_hash = await self.keys.run_async(self.keys.keyed_hash, message)
            try:
                await self._check_login_attempts(flow, connector.info.id, login_hash)
            except RateLimited:
                credentials.clear()
                await self._transition(
                    flow, frozenset({Status.COLLECTING}), status=Status.AWAITING_CREDENTIALS
                )
                raise
            await self.audit.record(
                EventType.CREDENTIALS_RECEIVED,
                client_id=flow.request.client_id,
                data_source=connector.info.id,
                login_hash=login_hash,
                flow_ref=flow_ref(flow.flow_id),
                browser_family=flow.browser_family,
                device_type=flow.device_type,
                outcome="ok",
            )
            try:
                result = await connector.login(
                    credentials["login"], credentials["password"], flow.request.scopes
                )
            except Exception:
                log.error("connector %s raised; treated as unavailable", connector.info.id)
                result = CollectionResult(Outcome.SOURCE_UNAVAILABLE)
            finally:
                credentials.clear()
        return await self._after_collection(
            flow.with_(login_hash=login_hash), connector, result, envelope=stored
        )

    async def submit_otp(self, flow: FlowState, envelope: str) -> dict[str, Any]:
        if flow.status not in ACCEPTS_OTP:
            raise FlowConflict(f"not possible while the flow is {flow.status.value}")
        connector = self.connectors.get(flow.data_source or "")
        if connector is None:
            raise FlowConflict("no data source chosen")
        await self._check_flow_attempts(flow)
        await self._remember_envelope(flow, envelope)
        flow = await self._transition(
            flow, ACCEPTS_OTP, status=Status.COLLECTING, collecting_since=time.time()
        )
        resume = await self.store.take("resume", flow.flow_id)
        if resume is None:
            await self._transition(
                flow, frozenset({Status.COLLECTING}), status=Status.AWAITING_CREDENTIALS
            )
            raise FlowConflict("the one-time code step has expired; log in again")
        try:
            opened = await self._open(envelope.encode("ascii", "replace"))
        except EnvelopeRejected:
            await self.store.put("resume", flow.flow_id, resume, expire_at=self._expiry(flow))
            await self._transition(flow, frozenset({Status.COLLECTING}), status=Status.OTP_REQUIRED)
            raise
        with opened:
            otp = opened.json_object(OTP_MEMBERS)
            try:
                result = await connector.submit_otp(resume, otp["otp"], flow.request.scopes)
            except Exception:
                log.error("connector %s raised; treated as unavailable", connector.info.id)
                result = CollectionResult(Outcome.SOURCE_UNAVAILABLE)
            finally:
                otp.clear()
        return await self._after_collection(flow, connector, result)

    async def _after_collection(
        self,
        flow: FlowState,
        connector: Connector,
        result: CollectionResult,
        envelope: bytes | None = None,
    ) -> dict[str, Any]:
        common = {
            "client_id": flow.request.client_id,
            "data_source": connector.info.id,
            "login_hash": flow.login_hash,
            "flow_ref": flow_ref(flow.flow_id),
            "browser_family": flow.browser_family,
            "device_type": flow.device_type,
        }
        collecting = frozenset({Status.COLLECTING})
        if result.outcome in (Outcome.INVALID_CREDENTIALS, Outcome.INVALID_OTP):
            await self._count_wrong_attempt(flow, connector.info.id)
        retry_otp = result.outcome in (Outcome.OTP_REQUIRED, Outcome.INVALID_OTP)
        if retry_otp and result.resume_state is not None:
            await self.store.put(
                "resume", flow.flow_id, result.resume_state, expire_at=self._expiry(flow)
            )
            await self._transition(
                flow,
                collecting,
                status=Status.OTP_REQUIRED,
                login_hash=flow.login_hash,
                last_outcome=result.outcome.value,
            )
            if result.outcome is Outcome.INVALID_OTP:
                return {
                    "status": "otp_required",
                    "reason": result.outcome.value,
                    "message": _FAILED_MESSAGES[Outcome.INVALID_OTP],
                }
            return {"status": "otp_required"}
        if result.outcome is Outcome.COLLECTED:
            await self.audit.record(EventType.COLLECTION_SUCCEEDED, outcome="collected", **common)
            await self.store.put_json(
                "data", flow.flow_id, {"data": result.data}, expire_at=self._expiry(flow)
            )
            result.data.clear()
            await self._transition(
                flow,
                collecting,
                status=Status.COLLECTED,
                login_hash=flow.login_hash,
                last_outcome="collected",
            )
            return {"status": "collected"}
        await self.audit.record(EventType.COLLECTION_FAILED, outcome=result.outcome.value, **common)
        offer = await self._offer_maintenance(flow, connector, result, envelope)
        await self._transition(
            flow,
            collecting,
            status=Status.AWAITING_CREDENTIALS,
            login_hash=flow.login_hash,
            last_outcome=result.outcome.value,
        )
        return {
            "status": "failed",
            "reason": result.outcome.value,
            "message": _FAILED_MESSAGES.get(result.outcome, "The collection failed."),
            "maintenance_offer": offer,
            "attempts_left": await self.attempts_left(flow),
        }

    # -- corrective maintenance -----------------------------------------------------------

    async def _offer_maintenance(
        self,
        flow: FlowState,
        connector: Connector,
        result: CollectionResult,
        envelope: bytes | None,
    ) -> bool:
        """After a failure that repairing the connector could fix (SPEC, "Retention", 120
        days), keep the JWE as received, sealed in Redis until the session ends, so that the
        person can be asked whether the broker may keep their credentials. The answer, a
        retry, a decision or the session's end erases it."""
        if (
            envelope is None
            or self.maintenance is None
            or flow.login_hash is None
            or not offers_maintenance(result.outcome)
        ):
            return False
        await self.store.put_json(
            MAINTENANCE_OFFER,
            flow.flow_id,
            {
                "envelope": envelope.decode("ascii", "replace"),
                "data_source": connector.info.id,
                "login_hash": flow.login_hash,
                "outcome": result.outcome.value,
            },
            expire_at=self._expiry(flow),
        )
        return True

    async def answer_maintenance(self, flow: FlowState, keep: bool) -> dict[str, Any]:
        """The person's answer to the offer. The offer is taken (GETDEL) whatever the answer:
        no erases it; yes opens the JWE through the HSM, seals the credentials again under the
        token's storage key (the JWE's RSA key may be destroyed by rotation long before 120
        days), wipes the clear copy, writes the audit row, then stores the sealed row in SQL."""
        offer = await self.store.take_json(MAINTENANCE_OFFER, flow.flow_id)
        vault = self.maintenance
        if offer is None or vault is None:
            raise FlowConflict("no offer to keep credentials is pending for this flow")
        reference = flow_ref(flow.flow_id)
        common = {
            "client_id": flow.request.client_id,
            "data_source": offer["data_source"],
            "login_hash": offer["login_hash"],
            "flow_ref": reference,
            "browser_family": flow.browser_family,
            "device_type": flow.device_type,
        }
        if not keep:
            await self.audit.record(
                EventType.MAINTENANCE_CONSENT_REFUSED, outcome="refused", **common
            )
            return {"kept": False}
        maintenance_id = new_maintenance_id()
        opened = await self._open(str(offer.pop("envelope")).encode("ascii", "replace"))
        with opened:  # wiped when the block ends, sealed or not
            opened.json_object(CREDENTIAL_MEMBERS).clear()  # the shape a login accepts
            sealed = await self.keys.run_async(
                lambda: vault.seal(
                    maintenance_id,
                    bytes(opened.view()),
                    data_source=offer["data_source"],
                    login_hash=offer["login_hash"],
                    client_id=flow.request.client_id,
                    flow_ref=reference,
                )
            )
        # Written before the row is stored; if it cannot be, nothing is kept (fail closed).
        await self.audit.record(
            EventType.MAINTENANCE_CONSENT_GIVEN,
            outcome="kept",
            query=f"maintenance_id={maintenance_id}",
            **common,
        )
        kept = await asyncio.to_thread(vault.store, sealed)
        return {"kept": True, "expires_at": kept.expires_at.isoformat()}

    async def review(self, flow: FlowState) -> dict[str, Any]:
        if flow.status is not Status.COLLECTED:
            raise FlowConflict(f"no data to review while the flow is {flow.status.value}")
        stored = await self.store.get_json("data", flow.flow_id)
        if stored is None:
            raise FlowNotFound("the collected data has expired")
        data: dict[str, dict[str, str]] = stored["data"]
        return {
            "data_source": flow.data_source,
            "fields": [
                {
                    "scope": scope,
                    "field": name,
                    "label": FIELD_LABELS[name],
                    "value": value,
                    "optional": (scope, name) in OPTIONAL_FIELDS,
                }
                for scope, values in data.items()
                for name, value in values.items()
            ],
        }

    def _redirect(self, request: AuthorizationRequest, **params: str) -> str:
        query = {**params}
        if request.state is not None:
            query["state"] = request.state
        query["iss"] = self.settings.issuer
        separator = "&" if "?" in request.redirect_uri else "?"
        return request.redirect_uri + separator + urlencode(query)

    async def decide(self, flow: FlowState, approve: bool, omit: list[str]) -> dict[str, str]:
        if flow.status not in ACCEPTS_DECISION:
            raise FlowConflict(f"no decision possible while the flow is {flow.status.value}")
        common = {
            "client_id": flow.request.client_id,
            "data_source": flow.data_source,
            "login_hash": flow.login_hash,
            "flow_ref": flow_ref(flow.flow_id),
            "browser_family": flow.browser_family,
            "device_type": flow.device_type,
        }
        if not approve:
            await self.audit.record(EventType.CONSENT_REFUSED, outcome="refused", **common)
            await self._erase(flow.flow_id)
            await self.store.delete("flow", flow.flow_id)
            await self.store.index_remove(
                expiry.INDEX, expiry.member(flow_ref(flow.flow_id), flow.request.client_id)
            )
            return {"redirect_to": self._redirect(flow.request, error="access_denied")}
        stored = await self.store.get_json("data", flow.flow_id)
        if stored is None:
            raise FlowNotFound("the collected data has expired")
        data: dict[str, dict[str, str]] = stored["data"]
        omitted = set(omit)
        optional_names = {name for _, name in OPTIONAL_FIELDS}
        if not omitted <= optional_names:
            raise FlowError("only optional fields can be left out")
        released = {
            scope: {k: v for k, v in values.items() if k not in omitted}
            for scope, values in data.items()
        }
        # Signed before anything changes: if the HSM cannot sign, the flow stays as it was.
        receipt = await self._receipt(flow, released)
        await self._transition(flow, ACCEPTS_DECISION, status=Status.APPROVED)
        await self.audit.record(EventType.CONSENT_GIVEN, outcome="approved", **common)
        code = new_handle(32)
        now = time.time()
        retention = self.settings.retention
        code_expiry = min(now + retention.authorization_code.total_seconds(), flow.expires_at)
        release_expiry = min(
            now + (retention.authorization_code + retention.access_token).total_seconds(),
            flow.expires_at,
        )
        await self.store.put_json(
            "release",
            flow.flow_id,
            {
                "data": released,
                "data_source": flow.data_source,
                "scopes": list(flow.request.scopes),
            },
            expire_at=datetime.fromtimestamp(release_expiry, UTC),
        )
        await self.store.put_json(
            "code",
            digest(code),
            {
                "flow_id": flow.flow_id,
                "client_id": flow.request.client_id,
                "redirect_uri": flow.request.redirect_uri,
                "code_challenge": flow.request.code_challenge,
                "scopes": list(flow.request.scopes),
                "data_source": flow.data_source,
                "login_hash": flow.login_hash,
                "release_expires_at": release_expiry,
            },
            expire_at=datetime.fromtimestamp(code_expiry, UTC),
        )
        await self.store.delete("data", flow.flow_id)
        return {"redirect_to": self._redirect(flow.request, code=code), "receipt": receipt}

    async def _receipt(self, flow: FlowState, released: Mapping[str, Mapping[str, str]]) -> str:
        """The consent receipt (`sharelock.audit.receipts`), signed in the HSM: which fields
        of which scopes went to whom, when, why, from where, and the flow's audit reference
        and login pseudonym. Field names only: no value ever goes into it."""
        partner = await self.partners.get(flow.request.client_id)
        if partner is None:
            raise FlowNotFound("the partner of this flow is no longer registered")
        shared = {scope: sorted(values) for scope, values in released.items()}
        issue = partial(
            issue_receipt,
            self.keys,
            issuer=self.settings.issuer,
            client_id=partner.client_id,
            partner_name=partner.name,
            purpose=partner.purpose,
            data_source=flow.data_source or "",
            shared=shared,
            flow_ref=flow_ref(flow.flow_id),
            login_hash=flow.login_hash,
            valid_for=self.settings.retention.audit_trace,
        )
        return await self.keys.run_async(issue)
