"""`ConsentService`: the person's side of a share, as the consent API sees it. A façade: each
step lives with the data it works on.

| step | module |
|---|---|
| start, session binding, status changes, the end | `flow/session.py` |
| credentials and one-time codes (one path), wrong-attempt limits | `flow/collection.py` |
| envelopes: one use, opened in the HSM at the last moment | `flow/envelopes.py` |
| the offer to keep credentials for maintenance | `flow/maintenance_offer.py` |
| identity verification: biometric consent, images, the engine | `flow/identity_check.py` |
| what the API shows: description, review, document pages | `flow/views.py` |
| the decision: receipt, release, authorization code | `flow/decision.py` |
| every Redis record, its type and lifetime | `flow/records.py` |

Every personal value lives in Redis only sealed, under keys that expire no later than the
session (`FlowState.expires_at`, fixed at creation). The credential JWE is stored as received and
opened only right before the connector logs in; the clear credentials exist inside that call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sharelock.clock import Clock
from sharelock.config import Settings
from sharelock.connectors import Connector
from sharelock.flow.collection import Collection, RememberedCall
from sharelock.flow.decision import Decisions
from sharelock.flow.envelopes import Envelopes
from sharelock.flow.identity_check import IdentityChecks
from sharelock.flow.maintenance_offer import MaintenanceOffers
from sharelock.flow.ports import AsyncAudit, AsyncPartners, eligible_sources
from sharelock.flow.records import Records
from sharelock.flow.remember_offer import RememberOffers
from sharelock.flow.session import Sessions, StartedFlow
from sharelock.flow.state import FlowState
from sharelock.flow.views import Views
from sharelock.keys import KeyLayer
from sharelock.maintenance import MaintenanceVault
from sharelock.oauth import AuthorizationRequest
from sharelock.ratelimit import RateLimiter


class ConsentService:
    def __init__(
        self,
        settings: Settings,
        records: Records,
        keys: KeyLayer,
        partners: AsyncPartners,
        audit: AsyncAudit,
        connectors: Mapping[str, Connector],
        *,
        limiter: RateLimiter,
        clock: Clock,
        maintenance: MaintenanceVault | None = None,
        remember_offers: bool = False,
    ) -> None:
        self.sessions = Sessions(settings, records, audit, clock)
        self.envelopes = Envelopes(settings, records, keys)
        self.offers = MaintenanceOffers(records, self.envelopes, keys, audit, maintenance)
        self.collection = Collection(
            settings,
            self.sessions,
            records,
            self.envelopes,
            keys,
            audit,
            connectors,
            limiter,
            self.offers,
            clock,
            remember_offers=remember_offers,
        )
        self.remember = RememberOffers(records, connectors)
        self.views = Views(
            settings,
            records,
            partners,
            connectors,
            self.offers,
            self.collection.attempts_left,
            clock,
        )
        self.decisions = Decisions(settings, self.sessions, records, keys, partners, audit, clock)
        self.identity = IdentityChecks(settings, records, self.envelopes, clock, audit)
        self.connectors = connectors

    async def start(self, request: AuthorizationRequest, user_agent: str | None) -> StartedFlow:
        return await self.sessions.start(request, user_agent)

    def providable(self, scopes: Sequence[str]) -> bool:
        """Whether one data source can provide every scope asked: if none can, the request
        is refused with `invalid_scope` before any flow starts, rather than a page where the
        person can do nothing and a partner that never hears back."""
        return bool(eligible_sources(self.connectors, scopes))

    async def load(self, flow_id: str, session_secret: str | None) -> FlowState:
        return await self.sessions.load(flow_id, session_secret)

    async def describe(self, flow: FlowState) -> dict[str, Any]:
        return await self.views.describe(flow)

    async def submit_credentials(
        self, flow: FlowState, data_source: str, envelope: str
    ) -> dict[str, Any]:
        return await self.collection.submit_credentials(flow, data_source, envelope)

    async def submit_remembered(
        self, flow: FlowState, data_source: str, login_hash: str, call: RememberedCall
    ) -> dict[str, Any]:
        """A one-click share's collection (`Collection.submit_remembered`)."""
        return await self.collection.submit_remembered(flow, data_source, login_hash, call)

    async def submit_otp(self, flow: FlowState, envelope: str) -> dict[str, Any]:
        return await self.collection.submit_otp(flow, envelope)

    async def answer_maintenance(self, flow: FlowState, keep: bool) -> dict[str, Any]:
        return await self.offers.answer(flow, keep)

    async def review(self, flow: FlowState) -> dict[str, Any]:
        return await self.views.review(flow)

    async def document_page(self, flow: FlowState, scope: str, page: int) -> bytes:
        """A page of a collected document as PNG, for the review (`Views.document_page`)."""
        return await self.views.document_page(flow, scope, page)

    async def decide(
        self,
        flow: FlowState,
        approve: bool,
        omit: list[str],
        decline_checks: Sequence[int] = (),
        reveal_actual_name: bool = False,
    ) -> dict[str, Any]:
        """The decision (`Decisions.decide`); after an approval, the offer to remember the
        source when one is pending (`RememberOffers`); a refusal declines it."""
        if not approve:
            await self.remember.decline(flow)
        answer: dict[str, Any] = await self.decisions.decide(
            flow, approve, omit, decline_checks, reveal_actual_name
        )
        offer = self.remember.describe(flow) if approve else None
        if offer is not None:
            answer["remember_offer"] = offer
        return answer

    async def decline_remember(self, flow: FlowState) -> dict[str, Any]:
        """The person's "no" to remembering the source."""
        await self.remember.decline(flow)
        return {"remembered": False}

    async def leave(self, flow: FlowState) -> str:
        """The partner's redirect with the code, issued now (`Decisions.leave`); an offer
        to remember the source not answered by then is declined."""
        await self.remember.decline(flow)
        return await self.decisions.leave(flow)

    async def identity_consent(self, flow: FlowState, agree: bool) -> dict[str, Any]:
        """The biometric-consent screen's answer (`IdentityChecks.consent`)."""
        return await self.identity.consent(flow, agree)

    async def identity_document(self, flow: FlowState, envelope: str) -> dict[str, Any]:
        return await self.identity.document(flow, envelope)

    async def identity_frames(self, flow: FlowState, envelopes: Sequence[str]) -> dict[str, Any]:
        return await self.identity.frames(flow, envelopes)

    async def verify_identity(self, flow: FlowState) -> dict[str, Any]:
        return await self.identity.verify(flow)
