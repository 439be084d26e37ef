"""Errors of the audit trail. Messages are fixed text and failure class names: never a field
value, since a rejected value is exactly the kind of thing that could be personal data."""

from __future__ import annotations

from sharelock.errors import ServiceUnavailable, SharelockError


class AuditError(SharelockError):
    """Base of the audit trail's errors."""


class AuditUnavailable(AuditError, ServiceUnavailable):
    """The row could not be committed (database down, read-only, locked too long, constraint
    violated). Whatever the row was meant to record must not happen: the broker fails closed
    (SECURITY-CHECKLIST case 45)."""


class DuplicateDelivery(AuditError):
    """A `data_delivered` row already exists for this delivery key (the code's hash): the
    data was already released once and must not be released again (case 46)."""


class InvalidAuditEvent(AuditError, ValueError):
    """An event field is not in the allowed pseudonymous form (a programming error)."""
