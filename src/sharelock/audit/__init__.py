"""The audit trail: pseudonymous, hash-chained rows in SQL (SPEC, "Audit trace").

Public surface: `AuditTrail` (the writer), `AuditEvent` / `EventType` (what a row may say),
`login_hash` / `login_hash_input` (the login pseudonym), `describe_user_agent` (navigation
data), `verify_chain` and `search` (the auditor's side), `Checkpointer` (signed checkpoints,
retention purges), `read_checkpoints` and `verify_trail` (chain and checkpoints), and the
errors; the auditor's queries (`TraceFilters`, `QueryKind`, `auditor_query_event`,
`search_filtered`, `iter_matching`, `count_matching`, `EXPORT_BATCH`) and exports
(`export_lines`, `ExportFormat`, `FORMATS`, `MEDIA_TYPES`); `AuditRecord` / `select_records`
(the rows as read back); the consent receipts (`issue_receipt`, `verify_receipt`, `Receipt`,
`InvalidReceipt`, `MAX_RECEIPT_LENGTH`) and the `Signer` they and the checkpoints are signed with.
"""

from sharelock.audit.checkpoints import (
    Checkpoint,
    Checkpointer,
    list_checkpoints,
    read_checkpoints,
)
from sharelock.audit.errors import (
    AuditError,
    AuditUnavailable,
    DuplicateDelivery,
    InvalidAuditEvent,
)
from sharelock.audit.events import DATA_SOURCE as DATA_SOURCE_PATTERN
from sharelock.audit.events import LOGIN_HASH as LOGIN_HASH_PATTERN
from sharelock.audit.events import AuditEvent, EventType
from sharelock.audit.export import FORMATS, MEDIA_TYPES, ExportFormat, export_lines
from sharelock.audit.integrity import Problem, TrailReport, verify_trail
from sharelock.audit.jws import BadSignature, Signer, sign_compact, verify_compact
from sharelock.audit.navigation import (
    BROWSER_FAMILIES,
    DEVICE_TYPES,
    BrowserFamily,
    DeviceType,
    describe_user_agent,
)
from sharelock.audit.pseudonyms import login_hash, login_hash_input, normalise_login
from sharelock.audit.queries import QueryKind, TraceFilters, auditor_query_event
from sharelock.audit.receipts import (
    MAX_RECEIPT_LENGTH,
    InvalidReceipt,
    Receipt,
    issue_receipt,
    verify_receipt,
)
from sharelock.audit.records import AuditRecord, select_records
from sharelock.audit.search import (
    EXPORT_BATCH,
    count_matching,
    iter_matching,
    search,
    search_filtered,
)
from sharelock.audit.trail import AuditTrail, Purged
from sharelock.audit.verify import VerifyReport, verify_chain

__all__ = [
    "BROWSER_FAMILIES",
    "DATA_SOURCE_PATTERN",
    "DEVICE_TYPES",
    "EXPORT_BATCH",
    "FORMATS",
    "LOGIN_HASH_PATTERN",
    "MAX_RECEIPT_LENGTH",
    "MEDIA_TYPES",
    "AuditError",
    "AuditEvent",
    "AuditRecord",
    "AuditTrail",
    "AuditUnavailable",
    "BadSignature",
    "BrowserFamily",
    "Checkpoint",
    "Checkpointer",
    "DeviceType",
    "DuplicateDelivery",
    "EventType",
    "ExportFormat",
    "InvalidAuditEvent",
    "InvalidReceipt",
    "Problem",
    "Purged",
    "QueryKind",
    "Receipt",
    "Signer",
    "TraceFilters",
    "TrailReport",
    "VerifyReport",
    "auditor_query_event",
    "count_matching",
    "describe_user_agent",
    "export_lines",
    "issue_receipt",
    "iter_matching",
    "list_checkpoints",
    "login_hash",
    "login_hash_input",
    "normalise_login",
    "read_checkpoints",
    "search",
    "search_filtered",
    "select_records",
    "sign_compact",
    "verify_chain",
    "verify_compact",
    "verify_receipt",
    "verify_trail",
]
