"""Sealing: every value is encrypted before it reaches Redis, with a key Redis never sees.

Envelope encryption (docs/architecture.md, "Storage encryption", option B): the process asks
the HSM for an AES-256 data key (`KeyLayer.new_data_key`, one HSM call), uses it for at most
`key_lifetime` or `max_uses` values, then asks for a fresh one. Each sealed value carries its own
wrapped data key, so any broker process can open it:

    version (1) | wrapped data key (61, as the key layer returns it) | iv (12) | ciphertext+tag

The AES-GCM additional data is the full Redis key name: a value copied to another key (another
session, another kind of record) does not open. A copy of Redis alone opens nothing: the data
keys are wrapped by the HSM's storage key.

Opening a value sealed under a data key this process does not hold unwraps it in the HSM once,
then keeps it in a small LRU. Clear data keys are wiped when they leave that cache or when
`close()` is called.

Threading: the fast paths run on the event loop; every HSM call (creating or unwrapping a data
key) runs on the key layer's single HSM thread through `KeyLayer.run_async`. Because that
thread is single, re-checking the state there makes rotation and unwrapping single-flight: fifty
concurrent seals on a cold Sealer cost one HSM call, not fifty. One `threading.Lock` guards the
keys; it is never held across an HSM call, and AES-GCM runs under it so that no key is wiped
while in use.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sharelock.envelope import wipe
from sharelock.keys import DecryptionFailed, KeyLayer
from sharelock.store.errors import SealError

FORMAT_VERSION = 1
WRAPPED_KEY_BYTES = 61  # KeyLayer.new_data_key: version (1) | iv (12) | key (32) | tag (16)
IV_BYTES = 12
TAG_BYTES = 16
DATA_KEY_BYTES = 32
HEADER_BYTES = 1 + WRAPPED_KEY_BYTES + IV_BYTES
OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES

DEFAULT_KEY_LIFETIME = timedelta(hours=1)
# Random 96-bit IVs: NIST SP 800-38D allows 2**32 messages per key; stay far below it.
DEFAULT_MAX_USES = 1_000_000
DEFAULT_CACHE_SIZE = 64

_VERSION_BYTE = bytes([FORMAT_VERSION])


class _DataKey:
    """One clear data key and its AES-GCM context. Its repr says nothing."""

    __slots__ = ("_aead", "_clear", "born", "uses", "wrapped")

    def __init__(self, wrapped: bytes, clear: bytearray, born: float) -> None:
        self.wrapped = wrapped
        self.born = born
        self.uses = 0
        self._clear = clear
        self._aead: AESGCM | None = AESGCM(clear)

    def __repr__(self) -> str:
        return "_DataKey(<redacted>)"

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        if self._aead is None:
            raise SealError()
        self.uses += 1
        return self._aead.encrypt(iv, plaintext, aad)

    def decrypt(self, iv: bytes, body: bytes, aad: bytes) -> bytes:
        if self._aead is None:
            raise SealError()
        try:
            return self._aead.decrypt(iv, body, aad)
        except InvalidTag:
            raise SealError() from None

    def wipe(self) -> None:
        # Dropping the AESGCM object frees (and cleanses) OpenSSL's copy of the key.
        self._aead = None
        wipe(self._clear)


@dataclass(frozen=True, slots=True)
class SealerStats:
    """Counters for tests and metrics: HSM calls made, keys held."""

    data_keys_created: int
    unwraps: int
    cached_keys: int


class Sealer:
    """Seals and opens values for the store. Safe to share between coroutines and threads."""

    def __init__(
        self,
        keys: KeyLayer,
        *,
        key_lifetime: timedelta = DEFAULT_KEY_LIFETIME,
        max_uses: int = DEFAULT_MAX_USES,
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if key_lifetime <= timedelta(0):
            raise ValueError("key_lifetime must be positive")
        if max_uses < 1:
            raise ValueError("max_uses must be at least 1")
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._keys = keys
        self._lifetime = key_lifetime.total_seconds()
        self._max_uses = max_uses
        self._cache_size = cache_size
        self._clock = clock
        self._lock = threading.Lock()
        self._current: _DataKey | None = None
        # Every clear key this process holds, by wrapped form, least recently used first.
        self._cache: OrderedDict[bytes, _DataKey] = OrderedDict()
        self._created = 0
        self._unwraps = 0

    def __repr__(self) -> str:
        return (
            f"Sealer(key_lifetime={self._lifetime:g}s, max_uses={self._max_uses}, "
            f"cached_keys={len(self._cache)})"
        )

    @property
    def stats(self) -> SealerStats:
        with self._lock:
            return SealerStats(self._created, self._unwraps, len(self._cache))

    # -- sealing ------------------------------------------------------------------------

    async def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt `plaintext` bound to `aad` (the Redis key name)."""
        iv = secrets.token_bytes(IV_BYTES)
        with self._lock:
            current = self._usable_current()
            if current is not None:
                return self._seal_with(current, iv, plaintext, aad)
        return await self._keys.run_async(self._seal_rotating, iv, plaintext, aad)

    def _usable_current(self) -> _DataKey | None:
        current = self._current
        if current is None or current.uses >= self._max_uses:
            return None
        if self._clock() - current.born >= self._lifetime:
            return None
        return current

    @staticmethod
    def _seal_with(key: _DataKey, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return _VERSION_BYTE + key.wrapped + iv + key.encrypt(iv, plaintext, aad)

    def _seal_rotating(self, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """On the HSM thread: seal with the current key, making a new one first if needed."""
        with self._lock:
            current = self._usable_current()
            if current is not None:  # another caller rotated while this one queued
                return self._seal_with(current, iv, plaintext, aad)
        clear, wrapped = self._keys.new_data_key()
        if len(clear) != DATA_KEY_BYTES or len(wrapped) != WRAPPED_KEY_BYTES:
            wipe(clear)
            raise SealError()
        fresh = _DataKey(wrapped, clear, self._clock())
        with self._lock:
            self._created += 1
            previous, self._current = self._current, fresh
            if previous is not None and previous.wrapped not in self._cache:
                previous.wipe()
            # The retired key stays in the cache (if there is room) to open what it sealed.
            self._remember(fresh)
            return self._seal_with(fresh, iv, plaintext, aad)

    # -- opening ------------------------------------------------------------------------

    async def open(self, sealed: bytes, aad: bytes) -> bytes:
        """Decrypt a value made by `seal` (in any process) with the same `aad`; `SealError`
        otherwise. An unavailable HSM is `HsmUnavailable`, not `SealError`: it is an outage,
        not a bad value, and the broker must answer 503 rather than treat the data as gone."""
        if len(sealed) < OVERHEAD_BYTES or sealed[:1] != _VERSION_BYTE:
            raise SealError()
        wrapped = bytes(sealed[1 : 1 + WRAPPED_KEY_BYTES])
        iv = bytes(sealed[1 + WRAPPED_KEY_BYTES : HEADER_BYTES])
        body = bytes(sealed[HEADER_BYTES:])
        with self._lock:
            key = self._cache.get(wrapped)
            if key is not None:
                self._cache.move_to_end(wrapped)
                return key.decrypt(iv, body, aad)
        return await self._keys.run_async(self._open_unwrapping, wrapped, iv, body, aad)

    def _open_unwrapping(self, wrapped: bytes, iv: bytes, body: bytes, aad: bytes) -> bytes:
        """On the HSM thread: unwrap the value's data key (unless a queued caller already
        did), cache it, and decrypt."""
        with self._lock:
            key = self._cache.get(wrapped)
            if key is not None:
                self._cache.move_to_end(wrapped)
                return key.decrypt(iv, body, aad)
        try:
            clear = self._keys.unwrap_data_key(wrapped)
        except DecryptionFailed:
            raise SealError() from None
        if len(clear) != DATA_KEY_BYTES:
            wipe(clear)
            raise SealError()
        key = _DataKey(wrapped, clear, self._clock())
        with self._lock:
            self._unwraps += 1
            self._remember(key)
            return key.decrypt(iv, body, aad)

    # -- the cache ----------------------------------------------------------------------

    def _remember(self, key: _DataKey) -> None:
        """Add a key to the LRU (lock held); wipe what falls out, unless it still seals."""
        self._cache[key.wrapped] = key
        self._cache.move_to_end(key.wrapped)
        while len(self._cache) > self._cache_size:
            _, evicted = self._cache.popitem(last=False)
            if evicted is not self._current:
                evicted.wipe()

    def close(self) -> None:
        """Wipe every clear data key. The Sealer stays usable: it will ask the HSM again."""
        with self._lock:
            for key in self._cache.values():
                key.wipe()
            if self._current is not None:
                self._current.wipe()
            self._cache.clear()
            self._current = None
