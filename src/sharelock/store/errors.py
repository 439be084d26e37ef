"""Errors of the TTL store. Their messages name operations and kinds of records, never a key
id (ids are often token digests or session handles) and never a value."""

from __future__ import annotations

from sharelock.errors import ServiceUnavailable, SharelockError


class StoreError(SharelockError):
    """Base of the store's errors."""


class StoreUnavailable(StoreError, ServiceUnavailable):
    """Redis did not answer, answered with an error, or refused a write (maxmemory reached with
    `noeviction`). The broker fails closed on it.

    After a timeout the outcome of a write is unknown: Redis may still apply it once it catches
    up. Every write here is absolute (PXAT, NX, XX, GETDEL), so applying it late or retrying it
    never extends a lifetime nor releases a value twice."""


class StoreConflict(StoreUnavailable):
    """A compare-and-swap kept losing to concurrent writers; the caller may try again later.
    It is a `StoreUnavailable` so that, unhandled, it becomes a 503 rather than a 500."""


class SealError(StoreError):
    """A stored value could not be opened: malformed, tampered with, moved to another key, or
    sealed under a data key the HSM does not unwrap. Deliberately says nothing about which."""

    def __init__(self) -> None:
        super().__init__("sealed value could not be opened")
