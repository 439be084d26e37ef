"""Key names and expiry limits: the pure rules of the store, apart from any Redis call.

Key names are `<namespace>:<kind>:<id>`. They are the AES-GCM additional data of the sealed
values, so a value only opens under the name it was written to. Ids are often digests of tokens
or session handles, so no error message here ever repeats one.

An id may start with a slot tag, `{xx}` (`tagged`): Redis Cluster then places the key by the tag
alone, so every key written with one tag lands in one hash slot, and a script or transaction over
them works on a cluster as on one server. There are `SLOT_TAGS` tags; `slot_tag` picks one from
a hex digest, so a flow's records, its code, its token and its expiry-index shard share one
(`sharelock.flow.records`). Standalone Redis ignores the braces: one key scheme everywhere.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sharelock.config import Retention

DEFAULT_NAMESPACE = "sl"

_NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# URL-safe base64, hex digests, `prefix:value` handles; nothing a SCAN pattern treats as glob.
# An optional leading slot tag, `{xx}`, is the only place braces may appear.
_ID = re.compile(r"(?:\{[0-9a-f]{2}\})?[A-Za-z0-9._~:+=/-]{1,256}")

# 64 tags: enough to spread flows over the primaries of a cluster (each tag is one of 16,384
# slots), few enough that the expiry sweep reads every index shard in one pass.
SLOT_TAGS: tuple[str, ...] = tuple(f"{n:02x}" for n in range(64))
_TAG_SET = frozenset(SLOT_TAGS)
_HEX_PREFIX = re.compile(r"[0-9a-f]{2}")


def slot_tag(hex_digest: str) -> str:
    """The slot tag of a value whose SHA-256 hex digest starts with `hex_digest`'s first two
    characters; `ValueError` if they are not lowercase hex."""
    head = hex_digest[:2]
    if not _HEX_PREFIX.fullmatch(head):
        raise ValueError("a slot tag comes from a lowercase hex digest")
    return SLOT_TAGS[int(head, 16) % len(SLOT_TAGS)]


def tag_of(store_id: str) -> str | None:
    """The slot tag a store id starts with (`tagged`), if any."""
    return store_id[1:3] if store_id.startswith("{") else None


def tagged(tag: str, record_id: str) -> str:
    """`record_id` placed in the hash slot of `tag` (one of `SLOT_TAGS`)."""
    if tag not in _TAG_SET:
        raise ValueError("unknown slot tag")
    return f"{{{tag}}}{record_id}"


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
