"""The sandbox's memory: CSRF tokens, logins waiting for a code, sessions, and source modes.

Everything lives in one process's memory and dies with it: the sandbox is a test double for
real portals, not a store. Entries expire after `SESSION_TTL_S` and the tables are bounded, so
a long-running demo cannot grow without limit. CSRF tokens are an HMAC of the cookie they are
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

SESSION_TTL_S = 15 * 60
MAX_ENTRIES = 10_000
MAX_OTP_ATTEMPTS = 3


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


@dataclass(slots=True)
class Session:
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


@dataclass
class SandboxState:
    """One app's state. `slow_seconds` is how long the slow user and slow mode wait."""

    slow_seconds: float
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    pending: _Table[Pending] = field(default_factory=_Table)
    sessions: _Table[Session] = field(default_factory=_Table)
    modes: dict[str, Mode] = field(default_factory=dict)

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
