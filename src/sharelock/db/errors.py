"""Errors of the SQL layer. Messages name the database kind and the failure class only: never
a password from the URL, and never a bound parameter (engines are built with
`hide_parameters=True` for the same reason)."""

from __future__ import annotations

from sharelock.errors import ServiceUnavailable, SharelockError


class DatabaseError(SharelockError):
    """Base of the SQL layer's errors."""


class DatabaseUnavailable(DatabaseError, ServiceUnavailable):
    """The database cannot be reached, refused a statement, or is read-only."""
