"""The person's decision: refuse (everything erased, `access_denied` to the partner) or approve
(the consent receipt signed in the HSM, the approved fields set aside for one delivery), then,
when the person goes on to the partner, the single-use authorization code in the redirect.

The code is issued when the person leaves (`leave`), not when they approve: they may read or
download the receipt for as long as the session lasts, and the code's short life (60 s) starts
only when the partner is about to receive it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

from sharelock.audit import EventType, issue_receipt
from sharelock.clock import Clock
from sharelock.config import Settings
from sharelock.flow import identity_steps
from sharelock.flow.checking import released
from sharelock.flow.errors import FlowConflict, FlowError, FlowNotFound
from sharelock.flow.ports import AsyncAudit, AsyncPartners
from sharelock.flow.record_types import Data, Release
from sharelock.flow.records import (
    CODE,
    COLLECTED,
    RELEASE,
    Erase,
    Put,
    Records,
    handle_in_slot_of,
)
from sharelock.flow.responses import authorization_redirect
from sharelock.flow.session import Sessions
from sharelock.flow.state import ACCEPTS_DECISION, ACCEPTS_LEAVE, FlowState, Status, flow_ref
from sharelock.keys import KeyLayer
from sharelock.oauth import CodeGrant, digest
from sharelock.registry import Partner
from sharelock.scopes import OPTIONAL_FIELDS

OPTIONAL_NAMES = frozenset(name for _, name in OPTIONAL_FIELDS)


class Decisions:
    def __init__(
        self,
        settings: Settings,
        sessions: Sessions,
        records: Records,
        keys: KeyLayer,
        partners: AsyncPartners,
        audit: AsyncAudit,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.records = records
        self.keys = keys
        self.partners = partners
        self.audit = audit
        self.clock = clock

    async def _redirect(self, flow: FlowState, **params: str) -> str:
        request = flow.request
        return await authorization_redirect(
            self.keys,
            self.clock,
            self.settings.issuer,
            redirect_uri=request.redirect_uri,
            client_id=request.client_id,
            state=request.state,
            response_mode=request.response_mode,
            **params,
        )

    async def decide(
        self,
        flow: FlowState,
        approve: bool,
        omit: list[str],
        decline_checks: Sequence[int] = (),
        reveal_actual_name: bool = False,
    ) -> dict[str, str]:
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
            await self.sessions.end(flow)
            return {"redirect_to": await self._redirect(flow, error="access_denied")}
        collected = await self.records.get(COLLECTED, flow.flow_id)
        if collected is None:
            raise FlowNotFound("the collected data has expired")
        omitted = set(omit)
        if not omitted <= OPTIONAL_NAMES:
            raise FlowError("only optional fields can be left out")
        declined = set(decline_checks)
        if not declined <= set(range(len(collected.checks))):
            raise FlowError("decline_checks: not the index of a check of this share")
        answers = released(collected.checks, declined, reveal_actual_name)
        if not identity_steps.finished(collected.identity):
            raise FlowConflict("the identity verification is not finished")
        data: Data = {
            scope: {k: v for k, v in values.items() if k not in omitted}
            for scope, values in collected.data.items()
        }
        partner = await self.partners.get(flow.request.client_id)
        if partner is None:
            raise FlowNotFound("the partner of this flow is no longer registered")
        # Signed before anything changes: if the HSM cannot sign, the flow stays as it was.
        receipt = await self._receipt(flow, partner, data, answers)
        release = Release(
            data=data,
            data_source=flow.data_source,
            scopes=list(flow.request.scopes),
            keep_identity=partner.identity_verification,
            collected_at=collected.collected_at,
            checks=answers,
            identity_verification=identity_steps.released(collected.identity),
        )
        # The release (until the person leaves for the partner, at most the session's end) and
        # the collected data's erasure go with the transition, in its script: the release
        # exists only if this decision won (two tabs deciding at once), the collected data
        # only while no decision did.
        await self.sessions.transition(
            flow,
            ACCEPTS_DECISION,
            along=[
                Put(RELEASE, flow_ref(flow.flow_id), release, until=flow.expires_at),
                Erase(COLLECTED, flow.flow_id),
            ],
            status=Status.APPROVED,
        )
        await self.audit.record(EventType.CONSENT_GIVEN, outcome="approved", **common)
        return {"redirect_to": self.continue_url(flow), "receipt": receipt}

    def continue_url(self, flow: FlowState) -> str:
        """Where the person goes on to the partner (`leave`), on the broker."""
        return f"{self.settings.issuer}/consent/{flow.flow_id}/continue"

    async def leave(self, flow: FlowState) -> str:
        """The partner's redirect with a fresh code, once per approved flow: the code lives
        from now, and the approved data for the code's and then the token's life at most,
        never past the session."""
        if flow.status not in ACCEPTS_LEAVE or not await self.records.exists(
            RELEASE, flow_ref(flow.flow_id)
        ):
            raise FlowConflict(f"not possible while the flow is {flow.status.value}")
        code = handle_in_slot_of(flow.flow_id)
        retention = self.settings.retention
        release_until = min(
            self.clock.now()
            + (retention.authorization_code + retention.access_token).total_seconds(),
            flow.expires_at,
        )
        grant = CodeGrant(
            flow_id=flow.flow_id,
            client_id=flow.request.client_id,
            redirect_uri=flow.request.redirect_uri,
            code_challenge=flow.request.code_challenge,
            scopes=list(flow.request.scopes),
            data_source=flow.data_source,
            login_hash=flow.login_hash,
            release_expires_at=release_until,
            dpop_jkt=flow.request.dpop_jkt,
        )
        # The release's new life first; the code is written by the transition's script, only
        # if this click is the one winner of two: a lost race writes no code at all.
        await self.records.shorten(RELEASE, flow_ref(flow.flow_id), until=release_until)
        await self.sessions.transition(
            flow,
            ACCEPTS_LEAVE,
            along=[Put(CODE, digest(code), grant, until=flow.expires_at)],
            status=Status.SENT,
        )
        return await self._redirect(flow, code=code)

    async def _receipt(
        self,
        flow: FlowState,
        partner: Partner,
        released: Mapping[str, Mapping[str, str]],
        answers: Sequence[Mapping[str, object]],
    ) -> str:
        """The consent receipt (`sharelock.audit.receipts`), signed in the HSM: which fields
        of which scopes went to whom, when, why, from where, and the flow's audit reference
        and login pseudonym; which checks were answered (`checks`: their names). Field and
        check names only: no value ever goes into it."""
        shared = {scope: sorted(values) for scope, values in released.items()}
        answered = sorted({str(a["check"]) for a in answers if not a.get("declined")})
        if answered:
            shared["checks"] = answered
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
