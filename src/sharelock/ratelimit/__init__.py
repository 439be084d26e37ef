"""Rate limits and quotas: moving windows in the broker's Redis (`limits`), one per name of
`Settings.limits`, counting by HMAC'd identifiers, failing closed.

Public surface: `RateLimiter`, `RateLimited`, `LimitName`, `LIMIT_NAMES`,
`IDENTIFIER_KEY_LABEL` and `identifier_key_from` (the identifiers' key, derived in the HSM).
"""

from sharelock.ratelimit.limiter import (
    IDENTIFIER_KEY_LABEL,
    LIMIT_NAMES,
    LimitName,
    RateLimited,
    RateLimiter,
    identifier_key_from,
)

__all__ = [
    "IDENTIFIER_KEY_LABEL",
    "LIMIT_NAMES",
    "LimitName",
    "RateLimited",
    "RateLimiter",
    "identifier_key_from",
]
