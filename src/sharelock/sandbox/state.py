"""The sandbox's memory: CSRF tokens, logins waiting for a code, sessions, remembered devices
and source modes.

Everything lives in one process's memory and dies with it: the sandbox is a test double for
real portals, not a store. Entries expire after `SESSION_TTL_S` (device tokens after
`DEVICE_TOKEN_TTL_S`, by the state's injected clock) and the tables are bounded, so a
long-running demo cannot grow without limit. CSRF tokens are an HMAC of the cookie they are
tied to (double-submit, but keyed), so they need no table at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from sharelock.clock import SYSTEM_CLOCK, Clock

SESSION_TTL_S = 15 * 60
MAX_ENTRIES = 10_000
MAX_OTP_ATTEMPTS = 3
DEVICE_TOKEN_TTL_S = 90 * 24 * 3600


class Mode(StrEnum):
    """How a whole source behaves, set through the control endpoint."""

    UP = "up"
    DOWN = "down"  # every page answers 503
    SLOW = "slow"  # every page answers after `slow_seconds`
    GARBAGE = "garbage"  # data pages answer 200 with something that is not the page


@dataclass(slots=True)
class Pending:
    """A right password waiting for its one-time code."""

    source: str
    login: str
    created: float
    attempts: int = 0
    remember: bool = False  # "remember this device" was ticked on the login form


@dataclass(slots=True)
class Session:
    source: str
    login: str
    created: float
    # A device token minted by this login, shown once on the first data page, then dropped.
    reveal: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DeviceToken:
    """A remembered device: which account of which source, since when (unix time)."""

    source: str
    login: str
    created: float


T = TypeVar("T", Pending, Session)


def new_id() -> str:
    return secrets.token_urlsafe(24)


class _Table(Generic[T]):
    """A bounded dict of id -> entry whose entries expire `SESSION_TTL_S` after creation."""

    def __init__(self) -> None:
        self._entries: dict[str, T] = {}

    def put(self, entry: T) -> str:
        self._prune()
        key = new_id()
        self._entries[key] = entry
        return key

    def get(self, key: str | None, source: str) -> T | None:
        entry = self._entries.get(key) if key else None
        if entry is None or entry.source != source:
            return None
        if time.monotonic() - entry.created > SESSION_TTL_S:
            self._entries.pop(key or "", None)
            return None
        return entry

    def drop(self, key: str | None) -> None:
        if key:
            self._entries.pop(key, None)

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, e in self._entries.items() if now - e.created > SESSION_TTL_S]:
            del self._entries[key]
        while len(self._entries) >= MAX_ENTRIES:  # oldest first: dicts keep insertion order
            del self._entries[next(iter(self._entries))]


class DeviceTokens:
    """Remembered devices, keyed by the SHA-256 of their token: like a real source, the table
    keeps no token itself. A token is valid `DEVICE_TOKEN_TTL_S` after its creation, for its
    own source only; revoking one is forgetting it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[str, DeviceToken] = {}

    def mint(self, source: str, login: str) -> str:
        now = self._clock.now()
        for key in [k for k, e in self._entries.items() if now - e.created > DEVICE_TOKEN_TTL_S]:
            del self._entries[key]
        while len(self._entries) >= MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]
        token = secrets.token_urlsafe(32)  # 256 bits
        self._entries[_digest(token)] = DeviceToken(source, login, now)
        return token

    def find(self, token: str | None, source: str) -> DeviceToken | None:
        """The token's entry if it is valid for `source`, else None (expired ones are dropped)."""
        key = _digest(token) if token else ""
        entry = self._entries.get(key)
        if entry is None or entry.source != source:
            return None
        if self._clock.now() - entry.created > DEVICE_TOKEN_TTL_S:
            del self._entries[key]
            return None
        return entry

    def revoke(self, token: str | None, source: str) -> None:
        """Forget the token if it is `source`'s; idempotent."""
        if token and self.find(token, source) is not None:
            del self._entries[_digest(token)]

    def count(self, source: str, login: str | None = None) -> int:
        """How many tokens `source` holds (for `login` only, if given), expired ones included."""
        return sum(
            1
            for entry in self._entries.values()
            if entry.source == source and login in (None, entry.login)
        )

    def revoke_source(self, source: str) -> int:
        """Forget every token of `source`; how many there were."""
        keys = [k for k, e in self._entries.items() if e.source == source]
        for key in keys:
            del self._entries[key]
        return len(keys)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class SandboxState:
    """One app's state. `slow_seconds` is how long the slow user and slow mode wait; `clock`
    dates device tokens (tests move it to see them expire)."""

    slow_seconds: float
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    pending: _Table[Pending] = field(default_factory=_Table)
    sessions: _Table[Session] = field(default_factory=_Table)
    modes: dict[str, Mode] = field(default_factory=dict)
    clock: Clock = SYSTEM_CLOCK
    devices: DeviceTokens = field(init=False)

    def __post_init__(self) -> None:
        self.devices = DeviceTokens(self.clock)

    def csrf_token(self, purpose: str, bound_to: str) -> str:
        """The token a form carries, bound to the cookie value `bound_to` and to its purpose."""
        mac = hmac.new(self.secret, f"{purpose}\x00{bound_to}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")

    def csrf_ok(self, purpose: str, bound_to: str | None, token: str | None) -> bool:
        if not bound_to or not token:
            return False
        return hmac.compare_digest(self.csrf_token(purpose, bound_to), token)

    def mode(self, source: str) -> Mode:
        return self.modes.get(source, Mode.UP)
