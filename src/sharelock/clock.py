"""Time, injected: whatever decides something by the clock (a session's end, a code's life, a
stale collection, an assertion's `exp`) asks a `Clock`, so that tests move time instead of
sleeping, and a busy machine cannot make a test late.

Redis keeps its own clock for expiry (`PXAT`): tests that need Redis to forget something
shorten the key's life there (`PEXPIRE`), which is what a real expiry looks like.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix time, in seconds."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class FrozenClock:
    """A clock that moves only when told to (`advance`, `set`): for tests."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, moment: float) -> None:
        self._now = moment

    def __repr__(self) -> str:
        return f"FrozenClock({self._now!r})"


def utc(clock: Clock) -> datetime:
    """The clock's now as an aware UTC datetime."""
    return datetime.fromtimestamp(clock.now(), UTC)


SYSTEM_CLOCK = SystemClock()
