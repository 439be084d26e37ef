"""The state of one share flow, as kept (sealed) in Redis, and its allowed transitions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sharelock.oauth import AuthorizationRequest, digest


class Status(StrEnum):
    AWAITING_CREDENTIALS = "awaiting_credentials"
    COLLECTING = "collecting"
    OTP_REQUIRED = "otp_required"
    COLLECTED = "collected"
    APPROVED = "approved"
    # The person went on to the partner: the code was issued then (`Decisions.leave`).
    SENT = "sent"
    REFUSED = "refused"
    DELIVERED = "delivered"


def flow_ref(flow_id: str) -> str:
    """What the audit trail keeps of a flow id: enough to group its rows, not to act on it."""
    return digest(flow_id)[:32]


# Which statuses each step may start from. Anything else is a 409 (wrong moment), never a guess.
ACCEPTS_CREDENTIALS = frozenset({Status.AWAITING_CREDENTIALS, Status.OTP_REQUIRED})
ACCEPTS_OTP = frozenset({Status.OTP_REQUIRED})
ACCEPTS_DECISION = frozenset({Status.COLLECTED})
ACCEPTS_LEAVE = frozenset({Status.APPROVED})


@dataclass(frozen=True, slots=True)
class FlowState:
    flow_id: str
    request: AuthorizationRequest
    session_hash: str  # SHA-256 of the browser's session cookie
    created_at: float
    expires_at: float  # creation + session lifetime; never moved
    status: Status = Status.AWAITING_CREDENTIALS
    data_source: str | None = None
    login_hash: str | None = None
    last_outcome: str | None = None
    browser_family: str = "unknown"
    device_type: str = "unknown"
    attempts: int = 0
    collecting_since: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)

    def with_(self, **changes: Any) -> FlowState:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        value = asdict(self)
        value["request"] = self.request.to_json()
        value["status"] = self.status.value
        return value

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> FlowState:
        value = dict(value)
        value["request"] = AuthorizationRequest.from_json(value["request"])
        value["status"] = Status(value["status"])
        return cls(**value)
