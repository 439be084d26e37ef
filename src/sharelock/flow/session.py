"""The anonymous session of one share: created by `/authorize`, bound to the browser that got
its cookie, moved from status to status by compare-and-set, ended by the decision, the
delivery or Redis at the session's cap.

The session's end (`FlowState.expires_at`) is fixed at creation and never moved: every record of
the flow is written to expire no later (`Records.put(..., until=flow.expires_at)`).

A request reads its flow once (`load`); a transition of the flow it holds compares and sets
against the version it read (or last wrote), and reads the flow again only if another request
changed it meanwhile.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sharelock.audit import EventType, describe_user_agent
from sharelock.clock import Clock
from sharelock.config import Settings
from sharelock.flow import expiry
from sharelock.flow.errors import FlowConflict, FlowForbidden, FlowNotFound
from sharelock.flow.ports import AsyncAudit
from sharelock.flow.records import (
    COLLECTED,
    FLOW,
    IDENTITY_DOCUMENT,
    IDENTITY_FRAMES,
    IDENTITY_HELD,
    MAINTENANCE_OFFER,
    REMEMBER_OFFER,
    RESUME,
    Erase,
    Kind,
    Loaded,
    Put,
    Records,
)
from sharelock.flow.state import FlowState, Status, flow_ref
from sharelock.oauth import AuthorizationRequest, digest, new_handle

MAX_FLOW_ID_LENGTH = 64
# What a flow keeps while it runs: the source's session, the collected data, a
# pending maintenance or remember offer, identity verification's images and the identity they
# are compared with.
WORKING_DATA: tuple[Kind[Any], ...] = (
    RESUME,
    COLLECTED,
    MAINTENANCE_OFFER,
    REMEMBER_OFFER,
    IDENTITY_HELD,
    IDENTITY_DOCUMENT,
    IDENTITY_FRAMES,
)

# The flow this request last read or moved, with the version stored, for `transition`. A
# context variable: each request runs in its own asyncio task, with its own copy.
_HELD: ContextVar[Loaded[FlowState] | None] = ContextVar("sharelock_flow_held", default=None)


@dataclass(frozen=True, slots=True, repr=False)
class StartedFlow:
    flow_id: str
    session_secret: str  # goes into the flow's cookie, and nowhere else
    expires_at: float

    def __repr__(self) -> str:
        return f"StartedFlow(expires_at={self.expires_at!r})"


class Sessions:
    def __init__(
        self, settings: Settings, records: Records, audit: AsyncAudit, clock: Clock
    ) -> None:
        self.settings = settings
        self.records = records
        self.audit = audit
        self.clock = clock

    async def start(self, request: AuthorizationRequest, user_agent: str | None) -> StartedFlow:
        now = self.clock.now()
        # Drawn at PAR when the request was pushed (its reference went back to the partner,
        # to match webhook events with); a request_uri starts one flow at most.
        flow_id = request.flow_id or new_handle(24)
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
        index = expiry.index_of(flow_ref(flow_id))
        await self.records.put_indexed(
            FLOW,
            flow_id,
            flow,
            until=flow.expires_at,
            index=index,
            member=member,
            deadline=flow.expires,
        )
        try:
            await self.audit.record(
                EventType.FLOW_STARTED,
                client_id=request.client_id,
                flow_ref=flow_ref(flow_id),
                browser_family=browser,
                device_type=device,
                outcome="ok",
            )
        except Exception:
            await self.records.end([(FLOW, flow_id)], index, member)
            raise
        return StartedFlow(flow_id, secret, flow.expires_at)

    async def load(self, flow_id: str, session_secret: str | None) -> FlowState:
        """The flow, if it is alive and this browser holds its session secret."""
        if not flow_id or len(flow_id) > MAX_FLOW_ID_LENGTH:
            raise FlowNotFound("no such flow, or its session has expired")
        loaded = await self.records.get_loaded(FLOW, flow_id)
        if loaded is None:
            raise FlowNotFound("no such flow, or its session has expired")
        flow = loaded.value
        if flow.expires_at <= self.clock.now():
            raise FlowNotFound("the session has expired")
        presented = digest(session_secret) if session_secret else ""
        if not hmac.compare_digest(presented, flow.session_hash):
            raise FlowForbidden("this flow belongs to another browser session")
        _HELD.set(loaded)
        return flow

    def stale_collection(self, flow: FlowState) -> bool:
        """A collection abandoned by a crashed worker must not lock the person out."""
        limit = 3 * self.settings.connector_timeout + 5
        return (
            flow.status == Status.COLLECTING
            and flow.collecting_since is not None
            and self.clock.now() - flow.collecting_since > limit
        )

    def check_status(self, flow: FlowState, allowed: frozenset[Status]) -> None:
        if flow.status not in allowed and not self.stale_collection(flow):
            raise FlowConflict(f"not possible while the flow is {flow.status.value}")

    async def transition(
        self,
        flow: FlowState,
        allowed: frozenset[Status],
        *,
        along: Sequence[Put[Any] | Erase] = (),
        **changes: Any,
    ) -> FlowState:
        """Compare-and-set on the status, so two tabs cannot run the same step twice. The
        change applies to the flow as stored, whatever `flow` holds: tried first against the
        version this request last read or wrote (no second read if nobody changed it since),
        read again otherwise. `along`: the flow's records written or deleted in the same
        script, and only if the transition happens (one round trip for all)."""

        def apply(current: FlowState) -> FlowState:
            self.check_status(current, allowed)
            return current.with_(**changes)

        held = _HELD.get()
        known = held if held is not None and held.value.flow_id == flow.flow_id else None
        updated = await self.records.update_loaded(
            FLOW, flow.flow_id, apply, known=known, along=along
        )
        if updated is None:
            raise FlowNotFound("the session has expired")
        _HELD.set(updated)
        return updated.value

    async def erase_working_data(self, flow_id: str) -> None:
        """What a flow keeps while it runs (`WORKING_DATA`), with one command."""
        await self.records.delete_all([(kind, flow_id) for kind in WORKING_DATA])

    async def end(self, flow: FlowState) -> None:
        """The flow is over (refused): nothing of it stays, and the expiry sweep has nothing
        more to account for (one script: the records and the index entry together)."""
        ref = flow_ref(flow.flow_id)
        await self.records.end(
            [(kind, flow.flow_id) for kind in (*WORKING_DATA, FLOW)],
            expiry.index_of(ref),
            expiry.member(ref, flow.request.client_id),
        )
