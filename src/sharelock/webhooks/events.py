"""What a partner hears about, and the Security Event Token (RFC 8417) that says it.

Every event comes from one audit row, already committed before the fact it records
(`sharelock.audit`): the trail is the outbox, so an event exists exactly when its row does.
The event says what the row says and nothing more: its kind, when, the flow reference (a
digest of the flow id), and for a delivery the delivery key (the SHA-256 of the partner's own
access token), for a rights request its reference and the right. Never a login, a name or
any shared value: the audit row holds none.

The `jti` is a digest of the row's id and hash: the same row always gives the same `jti`, so a
retry, a replay or a second relay sends the same value and the receiver drops duplicates.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

# The event types' URIs: one fixed namespace, whatever the issuer, so a partner's code matches
# constant strings on every broker (sandbox and production).
EVENT_URI_PREFIX = "https://sharelock.dev/events/"
SET_TYPE = "secevent+jwt"

SHARE_DELIVERED = "share.delivered"
SHARE_EXPIRED = "share.expired"
SHARE_REFUSED = "share.refused"
CONSENT_WITHDRAWN = "consent.withdrawn"
ERASURE_REQUESTED = "erasure.requested"
RIGHTS_REQUEST = "rights.request"
EVENT_TYPES = (
    SHARE_DELIVERED,
    SHARE_EXPIRED,
    SHARE_REFUSED,
    CONSENT_WITHDRAWN,
    ERASURE_REQUESTED,
    RIGHTS_REQUEST,
)

# Audit event (`sharelock.audit.EventType` values) -> webhook event; `rights_request` depends on
# the right asked (`rights_event`).
BY_AUDIT_EVENT = {
    "data_delivered": SHARE_DELIVERED,
    "data_expired": SHARE_EXPIRED,
    "flow_abandoned": SHARE_EXPIRED,
    "consent_refused": SHARE_REFUSED,
    "rights_request": RIGHTS_REQUEST,
}
RELAYED_AUDIT_EVENTS = tuple(BY_AUDIT_EVENT)
_BY_RIGHT = {"withdrawal": CONSENT_WITHDRAWN, "erasure": ERASURE_REQUESTED}
# A rights request's reference as the audit row's `query` holds it (`reference=R-…`).
_REFERENCE = re.compile(r"(?:^|&)reference=([A-Za-z0-9-]{1,40})(?:&|$)")
_CODE = re.compile(r"[a-z_]{1,40}")


@dataclass(frozen=True, slots=True)
class AuditFacts:
    """The columns of an audit row that an event may use (read by the relay)."""

    id: int
    at: datetime
    event: str
    client_id: str
    row_hash: str
    flow_ref: str | None = None
    detail_code: str | None = None
    delivery_key: str | None = None
    query: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One event for one partner, as queued: the row's facts, plus the delivery's state
    (`attempts` made, the `last_error` code, when it was queued: the retry horizon's start)."""

    id: int  # the audit row's id: unique, and what the operator names in `webhooks replay`
    type: str
    client_id: str
    jti: str
    occurred_at: str
    queued_at: float
    flow_ref: str | None = None
    detail: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: float | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """The event, or `ValueError` if `raw` is not one (a damaged entry)."""
        try:
            value = json.loads(raw)
            return cls(**value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a queued webhook event ({type(exc).__name__})") from None

    def attempted(self, at: float, error: str | None) -> Event:
        return replace(self, attempts=self.attempts + 1, last_error=error, last_attempt_at=at)

    def requeued(self, at: float) -> Event:
        """The event replayed by the operator: a fresh horizon and back-off, the same `jti`."""
        return replace(self, queued_at=at, attempts=0, last_error=None)


def jti_of(row_id: int, row_hash: str) -> str:
    """The SET's `jti`: the same audit row always gives the same one."""
    return hashlib.sha256(f"sharelock-set|{row_id}|{row_hash}".encode()).hexdigest()[:32]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def rights_event(detail_code: str | None) -> str:
    return _BY_RIGHT.get(detail_code or "", RIGHTS_REQUEST)


def event_of(row: AuditFacts, queued_at: float) -> Event | None:
    """The event an audit row gives its partner, or None if it gives none."""
    kind = BY_AUDIT_EVENT.get(row.event)
    if kind is None:
        return None
    detail: dict[str, str] = {}
    if kind == SHARE_DELIVERED and row.delivery_key:
        detail["delivery_key"] = row.delivery_key
    if row.event == "rights_request":
        kind = rights_event(row.detail_code)
        if row.detail_code and _CODE.fullmatch(row.detail_code):
            detail["right"] = row.detail_code
        found = _REFERENCE.search(row.query or "")
        if found:
            detail["reference"] = found.group(1)
    return Event(
        id=row.id,
        type=kind,
        client_id=row.client_id,
        jti=jti_of(row.id, row.row_hash),
        occurred_at=_iso(row.at),
        queued_at=queued_at,
        flow_ref=row.flow_ref,
        detail=detail,
    )


def set_claims(event: Event, issuer: str, now: float) -> dict[str, Any]:
    """The SET's claims (RFC 8417 §2.2): `iss`, `iat`, `jti`, `aud` (the partner's client id),
    `txn` (the flow reference, which ties a share's events together) and one event."""
    payload: dict[str, Any] = {"occurred_at": event.occurred_at}
    if event.flow_ref is not None:
        payload["flow_ref"] = event.flow_ref
    payload.update(event.detail)
    claims: dict[str, Any] = {
        "iss": issuer,
        "iat": int(now),
        "jti": event.jti,
        "aud": event.client_id,
        "events": {EVENT_URI_PREFIX + event.type: payload},
    }
    if event.flow_ref is not None:
        claims["txn"] = event.flow_ref
    return claims
