"""The audit trail: pseudonymous, hash-chained rows in SQL (SPEC, "Audit trace").

Public surface: `AuditTrail` (the writer), `AuditEvent` / `EventType` (what a row may say),
`login_hash` / `login_hash_input` (the login pseudonym), `describe_user_agent` (navigation
data), `verify_chain` and `search` (the auditor's side), `Checkpointer` (signed checkpoints,
retention purges) and `verify_trail` (chain and checkpoints), and the errors.
"""

from sharelock.audit.checkpoints import Checkpoint, Checkpointer, list_checkpoints
from sharelock.audit.errors import (
    AuditError,
    AuditUnavailable,
    DuplicateDelivery,
    InvalidAuditEvent,
)
from sharelock.audit.events import AuditEvent, EventType
from sharelock.audit.integrity import Problem, TrailReport, verify_trail
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
from sharelock.audit.trail import AuditTrail, Purged
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
    "Checkpoint",
    "Checkpointer",
    "DeviceType",
    "DuplicateDelivery",
    "EventType",
    "InvalidAuditEvent",
    "Problem",
    "Purged",
    "TrailReport",
    "VerifyReport",
    "describe_user_agent",
    "list_checkpoints",
    "login_hash",
    "login_hash_input",
    "normalise_login",
    "search",
    "verify_chain",
    "verify_trail",
]
