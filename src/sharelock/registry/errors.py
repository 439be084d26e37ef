"""Errors of the partner registry. Messages name the field and the rule it broke; they may
quote what the operator typed (a URI, a scope), never a client secret or its hash."""

from __future__ import annotations

from sharelock.errors import ServiceUnavailable, SharelockError


class RegistryError(SharelockError):
    """Base of the registry's errors."""


class InvalidPartner(RegistryError, ValueError):
    """A partner's registration is refused; the message says which field and why."""


class RegistryUnavailable(RegistryError, ServiceUnavailable):
    """The partner table cannot be read or written (database down, read-only, …)."""
