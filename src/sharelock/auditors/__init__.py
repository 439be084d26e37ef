"""Auditors: the third kind of user. Each holds a bearer token with the auditor role, made
and revoked by the operator (`sharelock auditors add | list | revoke`), stored hashed.

Public surface: `AuditorRegistry`, the frozen `Auditor` it hands out, and the errors.
"""

from sharelock.auditors.errors import (
    AuditorError,
    AuditorsUnavailable,
    InvalidAuditor,
    UnknownAuditor,
)
from sharelock.auditors.registry import TOKEN_PREFIX, Auditor, AuditorRegistry, token_digest

__all__ = [
    "TOKEN_PREFIX",
    "Auditor",
    "AuditorError",
    "AuditorRegistry",
    "AuditorsUnavailable",
    "InvalidAuditor",
    "UnknownAuditor",
    "token_digest",
]
