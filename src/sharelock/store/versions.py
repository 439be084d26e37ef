"""Compare-and-set of sealed records: a record is written only if it still holds exactly the
sealed bytes its writer read (one script, `scripts.COMPARE_AND_SET`), keeping its expiry.

Sealed bytes differ at every write (a fresh IV), so they are a version: `Versioned` carries a
value with the bytes it was read or written as, and an update of a value the caller already
holds is tried against them first, without reading the record again. Records that change with
the update (`Along`: written or deleted) go in the same script, and only if it writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sharelock.store import scripts
from sharelock.store.client import RedisClient, redis_errors
from sharelock.store.errors import StoreConflict, StoreError
from sharelock.store.sealing import Sealer

DEFAULT_CAS_ATTEMPTS = 16

BytesUpdater = Callable[[bytes], bytes | None]


@dataclass(frozen=True, slots=True, repr=False)
class Versioned:
    """A record's clear value and the sealed bytes it was read or written as: what a
    compare-and-set of it compares. Its repr says nothing."""

    value: bytes
    sealed: bytes

    def __repr__(self) -> str:
        return "Versioned()"


@dataclass(frozen=True, slots=True, repr=False)
class Along:
    """A record that changes with an update, in its script and only if it writes: written
    (`sealed`, expiring at `pxat`, Unix ms) or, with `sealed` None, deleted. On a cluster its
    key must carry the updated record's slot tag."""

    key: str
    sealed: bytes | None = None
    pxat: int = 0

    def __repr__(self) -> str:
        return "Along()"


def binary(reply: bytes | str | None) -> bytes | None:
    if isinstance(reply, str):
        # A client made with decode_responses=True: sealed values are binary, not text.
        raise StoreError("the Redis client decodes replies; the store needs bytes")
    return reply


class Versions:
    """Versioned reads and compare-and-set updates on one client and sealer."""

    def __init__(self, client: RedisClient, sealer: Sealer) -> None:
        self._client = client
        self._sealer = sealer
        self._compare_and_set = client.register_script(scripts.COMPARE_AND_SET)

    async def get(self, key: str, operation: str) -> Versioned | None:
        with redis_errors(operation):
            sealed = binary(await self._client.get(key))
        if sealed is None:
            return None
        return Versioned(await self._sealer.open(sealed, key.encode("ascii")), sealed)

    async def update(
        self,
        key: str,
        fn: BytesUpdater,
        *,
        operation: str,
        attempts: int = DEFAULT_CAS_ATTEMPTS,
        known: Versioned | None = None,
        along: Sequence[Along] = (),
    ) -> Versioned | None:
        """`SealedStore.update`: `known` first, without a read; then read, apply, compare and
        set, up to `attempts` times."""
        aad = key.encode("ascii")
        keys = [key, *(other.key for other in along)]
        more: list[bytes | int] = []
        for other in along:
            more += [other.sealed or b"", other.pxat]
        if known is not None:
            written = await self._update_known(keys, more, fn, operation, known)
            if written is not None:
                return written
        for _ in range(attempts):
            with redis_errors(operation):
                sealed = binary(await self._client.get(key))
            if sealed is None:
                return None
            current = await self._sealer.open(sealed, aad)
            updated = fn(current)
            if updated is None:
                return Versioned(current, sealed)
            resealed = await self._sealer.seal(updated, aad)
            with redis_errors(operation):
                if await self._compare_and_set(keys=keys, args=[sealed, resealed, *more]):
                    return Versioned(updated, resealed)
            # Changed meanwhile (try again on the new value) or gone (the next read says so).
        raise StoreConflict(f"{operation}: too many concurrent writers")

    async def _update_known(
        self,
        keys: list[str],
        more: list[bytes | int],
        fn: BytesUpdater,
        operation: str,
        known: Versioned,
    ) -> Versioned | None:
        """The first try, on the caller's version: None if it did not write."""
        try:
            updated = fn(known.value)
        except Exception:
            # Refused on what the caller held: decided again on what is stored.
            return None
        if updated is None:
            return None
        resealed = await self._sealer.seal(updated, keys[0].encode("ascii"))
        with redis_errors(operation):
            written = await self._compare_and_set(keys=keys, args=[known.sealed, resealed, *more])
        return Versioned(updated, resealed) if written else None
