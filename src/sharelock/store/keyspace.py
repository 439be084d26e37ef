"""Key names and expiry limits: the pure rules of the store, apart from any Redis call.

Key names are `<namespace>:<kind>:<id>`. They are the AES-GCM additional data of the sealed
values, so a value only opens under the name it was written to. Ids are often digests of tokens
or session handles, so no error message here ever repeats one.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sharelock.config import Retention

DEFAULT_NAMESPACE = "sl"

_NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# URL-safe base64, hex digests, `prefix:value` handles; nothing a SCAN pattern treats as glob.
_ID = re.compile(r"[A-Za-z0-9._~:+=/-]{1,256}")


def check_namespace(namespace: str) -> str:
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError("namespace must be 1-32 characters among A-Z a-z 0-9 _ -")
    return namespace


def key_name(namespace: str, kind: str, record_id: str) -> str:
    """The Redis key of one record; `ValueError` for a kind or id outside the allowed form."""
    if not _KIND.fullmatch(kind):
        raise ValueError("kind must be 1-32 characters among a-z 0-9 _ -, starting with a letter")
    if not _ID.fullmatch(record_id):
        raise ValueError("record id must be 1-256 URL-safe characters")
    return f"{namespace}:{kind}:{record_id}"


def redis_max_lifetime(retention: Retention) -> timedelta:
    """The longest life of anything the broker keeps in Redis (SPEC, "Retention"): with the
    defaults, the 72 hours of identity data kept for identity verification."""
    return max(
        retention.session,
        retention.authorization_code,
        retention.access_token,
        retention.pushed_request,
        retention.identity_data,
    )


def expiry_ms(expire_at: datetime, now: datetime, max_lifetime: timedelta) -> int:
    """`expire_at` as a Unix time in milliseconds (for PXAT), if it lies after `now` and no
    later than `now + max_lifetime`; `ValueError` otherwise. Refusing here, rather than clamping,
    makes a caller's wrong lifetime a bug that tests see, not a silent retention change."""
    if expire_at.tzinfo is None or expire_at.utcoffset() is None:
        raise ValueError("expire_at must be timezone-aware")
    if expire_at <= now:
        raise ValueError("expire_at is in the past")
    if expire_at - now > max_lifetime:
        raise ValueError(
            f"expire_at is beyond the longest Redis retention ({max_lifetime.total_seconds():g} s)"
        )
    return int(expire_at.timestamp() * 1000)
