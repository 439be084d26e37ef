"""The share itself: the person's side (`ConsentService`), the partner's side
(`DeliveryService`), and every record they keep in Redis (`Records`, `KINDS`).

Public surface: the two services and `StartedFlow`; `Records`, `KINDS` and `lifetimes` (the
Redis records, their types and lifetimes) with the kinds other packages keep there (`IDENTITY`,
`ASSERTION_JTI`, `RIGHTS_PROOF` / `RightsProof`, `RIGHTS_PENDING` / `RightsPending`);
`FlowState`, `Status`, `flow_ref`; the errors; the
async adapters the services take (`AsyncAudit`, `AsyncPartners`); `RememberOffer` (what the
offer to remember a source keeps, taken by the account when the person says yes); `Envelopes`
(one use per credential envelope, shared with the rights proofs); `refuse_attempt` (a person
stopped by a wrong-attempt limit, also from the rights proofs); the expiry sweep; `encrypt_to`
(a JWT sealed to a partner's `use: enc` key, for deliveries and webhook events).
"""

from sharelock.flow.collection import FAILED_MESSAGES, refuse_attempt
from sharelock.flow.consent import ConsentService
from sharelock.flow.delivery import DeliveryService
from sharelock.flow.envelopes import CREDENTIAL_MEMBERS, OTP_MEMBERS, Envelopes
from sharelock.flow.errors import FlowConflict, FlowError, FlowForbidden, FlowNotFound
from sharelock.flow.expiry import sweep, sweep_forever
from sharelock.flow.packaging import encrypt_to
from sharelock.flow.ports import AsyncAudit, AsyncPartners
from sharelock.flow.record_types import RememberOffer, RightsPending, RightsProof
from sharelock.flow.records import (
    ASSERTION_JTI,
    DPOP_JTI,
    IDENTITY,
    KINDS,
    RELEASE,
    RIGHTS_PENDING,
    RIGHTS_PROOF,
    Kind,
    Records,
    lifetimes,
)
from sharelock.flow.responses import authorization_redirect
from sharelock.flow.session import StartedFlow
from sharelock.flow.state import FlowState, Status, flow_ref

__all__ = [
    "ASSERTION_JTI",
    "CREDENTIAL_MEMBERS",
    "DPOP_JTI",
    "FAILED_MESSAGES",
    "IDENTITY",
    "KINDS",
    "OTP_MEMBERS",
    "RELEASE",
    "RIGHTS_PENDING",
    "RIGHTS_PROOF",
    "AsyncAudit",
    "AsyncPartners",
    "ConsentService",
    "DeliveryService",
    "Envelopes",
    "FlowConflict",
    "FlowError",
    "FlowForbidden",
    "FlowNotFound",
    "FlowState",
    "Kind",
    "Records",
    "RememberOffer",
    "RightsPending",
    "RightsProof",
    "StartedFlow",
    "Status",
    "authorization_redirect",
    "encrypt_to",
    "flow_ref",
    "lifetimes",
    "refuse_attempt",
    "sweep",
    "sweep_forever",
]
