"""The hash chain: how a row's hash is computed from its fields and its predecessor's hash.

`row_hash = SHA-256(canonical JSON of the row's fields and prev_hash)`. The canonical JSON has
sorted keys, no spaces, ASCII only, and the time as fixed-width UTC with microseconds, so the
same row always gives the same bytes on SQLite and PostgreSQL alike. The storage id is not
hashed: order is bound by `prev_hash`, and ids are checked separately (gap-free).

`OPTIONAL_HASHED_FIELDS` (added with migration 0002) are hashed only when set, so rows written
before they existed keep their hashes, and setting or clearing one still changes the hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sharelock.db import GENESIS_HASH

CHAIN_VERSION = 1
HASHED_FIELDS = (
    "at",
    "event",
    "client_id",
    "data_source",
    "login_hash",
    "flow_ref",
    "browser_family",
    "device_type",
    "outcome",
    "detail_code",
    "delivery_key",
)
OPTIONAL_HASHED_FIELDS = ("actor", "query")

__all__ = [
    "CHAIN_VERSION",
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "OPTIONAL_HASHED_FIELDS",
    "canonical_time",
    "row_hash",
]


def canonical_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime in the audit chain")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(fields: Mapping[Any, Any], prev_hash: str) -> bytes:
    document: dict[str, Any] = {name: fields[name] for name in HASHED_FIELDS}
    for name in OPTIONAL_HASHED_FIELDS:
        if fields.get(name) is not None:
            document[name] = fields[name]
    document["at"] = canonical_time(fields["at"])
    document["prev_hash"] = prev_hash
    document["v"] = CHAIN_VERSION
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def row_hash(fields: Mapping[Any, Any], prev_hash: str) -> str:
    """Hex SHA-256 of the row (`fields` holds at least HASHED_FIELDS) chained to `prev_hash`."""
    return hashlib.sha256(canonical_bytes(fields, prev_hash)).hexdigest()
