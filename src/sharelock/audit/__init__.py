"""The audit trail: pseudonymous, hash-chained rows in SQL (SPEC, "Audit trace").

Public surface: `AuditTrail` (the writer), `AuditEvent` / `EventType` (what a row may say),
`login_hash` / `login_hash_input` (the login pseudonym), `describe_user_agent` (navigation
data), `verify_chain` and `search` (the auditor's side), and the errors.
"""

from sharelock.audit.errors import (
    AuditError,
    AuditUnavailable,
    DuplicateDelivery,
    InvalidAuditEvent,
)
from sharelock.audit.events import AuditEvent, EventType
from sharelock.audit.navigation import (
    BROWSER_FAMILIES,
    DEVICE_TYPES,
    BrowserFamily,
    DeviceType,
    describe_user_agent,
)
from sharelock.audit.pseudonyms import login_hash, login_hash_input, normalise_login
from sharelock.audit.records import AuditRecord
from sharelock.audit.search import search
from sharelock.audit.trail import AuditTrail
from sharelock.audit.verify import VerifyReport, verify_chain

__all__ = [
    "BROWSER_FAMILIES",
    "DEVICE_TYPES",
    "AuditError",
    "AuditEvent",
    "AuditRecord",
    "AuditTrail",
    "AuditUnavailable",
    "BrowserFamily",
    "DeviceType",
    "DuplicateDelivery",
    "EventType",
    "InvalidAuditEvent",
    "VerifyReport",
    "describe_user_agent",
    "login_hash",
    "login_hash_input",
    "normalise_login",
    "search",
    "verify_chain",
]
