"""Errors of the auditor registry; messages never hold a token or its digest."""

from __future__ import annotations

from sharelock.errors import ServiceUnavailable, SharelockError


class AuditorError(SharelockError):
    """Base of the auditor registry's errors."""


class InvalidAuditor(AuditorError, ValueError):
    """A field given for a new auditor is not acceptable."""


class UnknownAuditor(AuditorError, LookupError):
    """No auditor has that id."""


class AuditorsUnavailable(AuditorError, ServiceUnavailable):
    """The database cannot be read or written."""
