"""When to try a failed webhook push again: exponential back-off with full jitter.

After the n-th failed attempt the next one waits a random time between `MIN_DELAY_S` and
`min(cap, base * 2^(n-1))` ("full jitter": many events failing together, when a partner's
endpoint goes down, do not come back together). Attempts go on until the horizon
(`SHARELOCK_WEBHOOK_RETRY_HORIZON`, 24 h) after the event was queued, with a last one at
the horizon itself; after that the event goes to the dead letters. The random source is
injected, as the clock is, so that tests give one exact timeline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

BASE_DELAY_S = 10.0
MAX_DELAY_S = 3600.0
MIN_DELAY_S = 1.0


@dataclass(frozen=True)
class Backoff:
    horizon_s: float
    base_s: float = BASE_DELAY_S
    cap_s: float = MAX_DELAY_S
    rng: random.Random = field(default_factory=random.SystemRandom)

    def __post_init__(self) -> None:
        if self.horizon_s <= 0 or self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("back-off needs a positive horizon, a positive base and cap >= base")

    def ceiling(self, attempts: int) -> float:
        """The longest wait after `attempts` failed attempts (1 or more)."""
        exponent = min(max(attempts - 1, 0), 32)  # 2^32 * base is far past any cap
        return min(self.cap_s, self.base_s * 2.0**exponent)

    def next_attempt(self, attempts: int, queued_at: float, now: float) -> float | None:
        """When to try again after `attempts` failures, the last one at `now`; None when the
        horizon has passed (dead letter)."""
        deadline = queued_at + self.horizon_s
        if now >= deadline:
            return None
        delay = max(MIN_DELAY_S, self.rng.uniform(0.0, self.ceiling(attempts)))
        return min(now + delay, deadline)
