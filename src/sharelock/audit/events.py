"""What an audit row may say.

Every field is pseudonymous or a fixed code, and each is checked against a narrow pattern, so
free text (an error message, a login, a name) cannot slip into the trail by mistake: the
trail outlives the data by 13 months and must hold nothing personal (SPEC, "Audit trace";
SECURITY-CHECKLIST case 37).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from sharelock.audit.errors import InvalidAuditEvent
from sharelock.audit.navigation import BROWSER_FAMILIES, DEVICE_TYPES


class EventType(StrEnum):
    """The kinds of audit rows; the stored value is the lower-case string."""

    FLOW_STARTED = "flow_started"
    CREDENTIALS_RECEIVED = "credentials_received"
    COLLECTION_SUCCEEDED = "collection_succeeded"
    COLLECTION_FAILED = "collection_failed"
    CONSENT_GIVEN = "consent_given"
    CONSENT_REFUSED = "consent_refused"
    DATA_DELIVERED = "data_delivered"
    DELIVERY_CONFLICT = "delivery_conflict"
    DATA_EXPIRED = "data_expired"
    FLOW_ABANDONED = "flow_abandoned"
    SECURITY_ALERT = "security_alert"
    AUDITOR_QUERY = "auditor_query"
    AUDITOR_ADDED = "auditor_added"
    AUDITOR_REVOKED = "auditor_revoked"
    # A person exercising their rights without an account (`/api/rights/…`): actor
    # `person`, outcome how they were identified (`receipt` or `proof`).
    RIGHTS_ACCESS = "rights_access"
    RIGHTS_ERASURE = "rights_erasure"
    RIGHTS_EXPORT = "rights_export"
    # A person proving control of a data-source account by signing in to it again
    # (`/api/rights/proofs`): outcome `verified`, `otp_required` or `failed` (then
    # `detail_code` says why, as the connector's outcome).
    RIGHTS_PROOF = "rights_proof"
    # A person asking for a right the broker acts on at once and/or forwards to a partner
    # (`sharelock.rights.desk`): `detail_code` the right (rectification, erasure, objection,
    # restriction, withdrawal, portability), `client_id` the partner, `query` the request's
    # reference when one is forwarded. Written before anything is done.
    RIGHTS_REQUEST = "rights_request"
    # A partner answering a forwarded request (actor `partner:<client id>`, outcome `done` or
    # `refused`, `query` the reference). Written before the request's status changes.
    RIGHTS_ANSWERED = "rights_answered"
    # Corrective maintenance: the person's answer to the offer made after a failed collection,
    # and each use an operator makes of the kept credentials (`sharelock maintenance`).
    MAINTENANCE_CONSENT_GIVEN = "maintenance_consent_given"
    MAINTENANCE_CONSENT_REFUSED = "maintenance_consent_refused"
    MAINTENANCE_ACCESS = "maintenance_access"
    MAINTENANCE_DELETED = "maintenance_deleted"
    # A limit refused a person or an auditor (`sharelock.ratelimit`): once per window and key,
    # `detail_code` naming the limit.
    RATE_LIMITED = "rate_limited"
    # The optional account (`sharelock.accounts`, docs/accounts.md): `flow_ref` is the
    # account's reference (`account:` and a digest of its id, never the id), actor `person`
    # (or `operator` when retention deletes an unused account, outcome `unused`). A source's
    # revocation also carries the data source and the login hash. Each is written before the
    # change it records; a deletion before anything is erased.
    ACCOUNT_CREATED = "account_created"
    ACCOUNT_PASSKEY_ADDED = "account_passkey_added"
    ACCOUNT_PASSKEY_REMOVED = "account_passkey_removed"
    ACCOUNT_RECOVERED = "account_recovered"
    ACCOUNT_SOURCE_CONNECTED = "account_source_connected"
    ACCOUNT_SOURCE_SYNCED = "account_source_synced"
    ACCOUNT_SOURCE_REVOKED = "account_source_revoked"
    ACCOUNT_EXPORTED = "account_exported"
    ACCOUNT_DELETED = "account_deleted"
    # Identity verification in a share (docs/identity-verification.md): the person's answer
    # on the biometric-consent screen (outcome `given` or `refused`), then the verification
    # (outcome `verified` or `failed`; `detail_code` the first check that failed). Never a
    # score, an image or a value read from the document.
    IDENTITY_CONSENT = "identity_consent"
    IDENTITY_VERIFIED = "identity_verified"


CODE = re.compile(r"[a-z_]{1,40}")
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
DATA_SOURCE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
LOGIN_HASH = re.compile(r"hmac-sha256:[0-9a-f]{64}")
REFERENCE = re.compile(r"[A-Za-z0-9_:.-]{1,128}")
# Who acted, for rows about the trail's own use: `auditor:<auditor id>`, `operator`,
# `person` (the data subject, through the rights API), or `partner:<client id>` (answering a
# person's request).
ACTOR = re.compile(r"[a-z]{1,12}(?::[A-Za-z0-9_-]{1,64})?")
# What was asked, as `name=value&…` built from validated filters (never free text).
QUERY = re.compile(r"[A-Za-z0-9_:.=&+-]{1,400}")

_PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "client_id": (CLIENT_ID, "a client id ([A-Za-z0-9_-], at most 64)"),
    "data_source": (DATA_SOURCE, "a data source id ([a-z0-9_-], at most 40)"),
    "login_hash": (LOGIN_HASH, "a keyed hash 'hmac-sha256:<64 hex>' (KeyLayer.keyed_hash)"),
    "flow_ref": (REFERENCE, "a reference ([A-Za-z0-9_:.-], at most 128)"),
    "outcome": (CODE, "a short code ([a-z_], at most 40)"),
    "detail_code": (CODE, "a short code ([a-z_], at most 40)"),
    "delivery_key": (REFERENCE, "a reference such as the code's SHA-256 (at most 128)"),
    "actor": (ACTOR, "'auditor:<id>', 'operator' or 'person'"),
    "query": (QUERY, "name=value pairs joined by '&' ([A-Za-z0-9_:.=&+-], at most 400)"),
}


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One event to append. `login_hash` is computed by the caller (`login_hash()` in
    `sharelock.audit.pseudonyms`); `flow_ref` and `delivery_key` should be digests of the
    flow id and the authorization code, not the bearer values themselves.

    `delivery_key` is required on `data_delivered` rows and refused on any other: the unique
    index on it is what makes a second release of the same code impossible."""

    event: EventType
    client_id: str | None = None
    data_source: str | None = None
    login_hash: str | None = None
    flow_ref: str | None = None
    browser_family: str | None = None
    device_type: str | None = None
    outcome: str | None = None
    detail_code: str | None = None
    delivery_key: str | None = None
    actor: str | None = None
    query: str | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "event", EventType(self.event))
        except ValueError:
            raise InvalidAuditEvent(
                f"event: expected one of {', '.join(e.value for e in EventType)}"
            ) from None
        for name, (pattern, description) in _PATTERNS.items():
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
                raise InvalidAuditEvent(f"{name}: must be {description}")
        if self.browser_family is not None and self.browser_family not in BROWSER_FAMILIES:
            raise InvalidAuditEvent(f"browser_family: expected one of {BROWSER_FAMILIES}")
        if self.device_type is not None and self.device_type not in DEVICE_TYPES:
            raise InvalidAuditEvent(f"device_type: expected one of {DEVICE_TYPES}")
        delivered = self.event is EventType.DATA_DELIVERED
        if delivered and self.delivery_key is None:
            raise InvalidAuditEvent("delivery_key: required on data_delivered events")
        if not delivered and self.delivery_key is not None:
            raise InvalidAuditEvent("delivery_key: only data_delivered events carry one")

    def columns(self) -> dict[str, Any]:
        """The row's columns (the event as its plain string value)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["event"] = self.event.value
        return values
