"""Server-provided DPoP nonces (RFC 9449 §8, §9) without shared state.

A nonce is the HMAC-SHA256, under a key the caller supplies, of the number of the time window
it was issued in. Every broker node holding the same key issues the same nonce in the same
window and recognises those of the current and the previous window, so a client may send its
next proof to any node, and no node has to store or synchronise anything. A nonce therefore
lives between one and two windows. Nodes whose clocks differ by more than a window would
disagree: NTP keeps them within a second.

The nonce proves freshness only (a proof cannot have been made long before it is used); it is
not a secret and not bound to a client, which RFC 9449 does not ask for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import struct
from typing import Protocol

DEFAULT_WINDOW_S = 120
MIN_KEY_BYTES = 32
# Domain separation: the key may be derived from a secret the broker uses elsewhere.
_LABEL = b"sharelock/dpop-nonce/v1\x00"


class NonceCheck(Protocol):
    """What `verify_proof` needs of a nonce policy: issue a fresh nonce (for `DPoP-Nonce`)
    and judge the one a proof carries."""

    def issue(self, now: float) -> str: ...
    def is_valid(self, nonce: str, now: float) -> bool: ...


class NonceIssuer:
    """Stateless, expiring DPoP nonces: `issue(now)` for the `DPoP-Nonce` header,
    `is_valid(nonce, now)` for the proof's `nonce` claim."""

    def __init__(self, key: bytes, *, window_s: int = DEFAULT_WINDOW_S) -> None:
        if len(key) < MIN_KEY_BYTES:
            # The key itself never appears in the message.
            raise ValueError(f"the DPoP nonce key must be at least {MIN_KEY_BYTES} bytes")
        if window_s < 1:
            raise ValueError("the DPoP nonce window must be at least one second")
        self._key = key
        self.window_s = window_s

    def _window(self, now: float) -> int:
        if not math.isfinite(now) or now < 0:
            raise ValueError("the clock gave an impossible time")
        return int(now // self.window_s)

    def _nonce(self, window: int) -> str:
        mac = hmac.new(self._key, _LABEL + struct.pack(">Q", window), hashlib.sha256).digest()
        # base64url has only NQCHARs, the characters RFC 9449 §8.1 allows in a nonce.
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def issue(self, now: float) -> str:
        return self._nonce(self._window(now))

    def is_valid(self, nonce: str, now: float) -> bool:
        window = self._window(now)
        candidate = nonce.encode("ascii", errors="replace")
        # Both windows are always computed and compared: the time taken says nothing about
        # which one matched.
        current = hmac.compare_digest(candidate, self._nonce(window).encode("ascii"))
        previous = window > 0 and hmac.compare_digest(
            candidate, self._nonce(window - 1).encode("ascii")
        )
        return current or previous
