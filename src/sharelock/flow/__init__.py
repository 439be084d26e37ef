"""The share itself: the person's side (`ConsentService`), the partner's side
(`DeliveryService`), and every record they keep in Redis (`Records`, `KINDS`).

Public surface: the two services and `StartedFlow`; `Records`, `KINDS` and `lifetimes` (the
Redis records, their types and lifetimes); `FlowState`, `Status`, `flow_ref`; the errors; the
async adapters the services take (`AsyncAudit`, `AsyncPartners`); `Envelopes` (one use per
credential envelope, shared with the rights proofs); the expiry sweep.
"""

from sharelock.flow.collection import CREDENTIAL_MEMBERS
from sharelock.flow.consent import ConsentService
from sharelock.flow.delivery import DeliveryService
from sharelock.flow.envelopes import Envelopes
from sharelock.flow.errors import FlowConflict, FlowError, FlowForbidden, FlowNotFound
from sharelock.flow.expiry import sweep, sweep_forever
from sharelock.flow.ports import AsyncAudit, AsyncPartners
from sharelock.flow.records import KINDS, Kind, Records, lifetimes
from sharelock.flow.session import StartedFlow
from sharelock.flow.state import FlowState, Status, flow_ref

__all__ = [
    "CREDENTIAL_MEMBERS",
    "KINDS",
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
    "StartedFlow",
    "Status",
    "flow_ref",
    "lifetimes",
    "sweep",
    "sweep_forever",
]
