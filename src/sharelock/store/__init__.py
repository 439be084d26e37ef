"""The TTL store: Redis, holding only values sealed with keys Redis never sees.

Public surface: `SealedStore` (namespaced, expiring, sealed records; one-time reads),
`Sealer` (the envelope encryption), `connect` and `connect_endpoint` (the fail-fast Redis
client, for a URL or through Sentinels), `RedisEndpoint` (where Redis is, from `Settings`),
`verify_redis` (the start-up check), `Versioned` (a value with the sealed bytes a
compare-and-set compares), the errors, `redis_max_lifetime` (the expiry cap from
the retention table), and the slot tags that keep related keys in one Redis Cluster slot
(`SLOT_TAGS`, `slot_tag`, `tagged`, `tag_of`).
"""

from sharelock.store.client import RedisClient, cluster_link, connect, connect_endpoint
from sharelock.store.endpoint import RedisEndpoint, TlsFiles
from sharelock.store.errors import SealError, StoreConflict, StoreError, StoreUnavailable
from sharelock.store.keyspace import (
    DEFAULT_NAMESPACE,
    SLOT_TAGS,
    redis_max_lifetime,
    slot_tag,
    tag_of,
    tagged,
)
from sharelock.store.redis_store import SealedStore, scan_all
from sharelock.store.sealing import Sealer, SealerStats
from sharelock.store.startup import verify_redis
from sharelock.store.versions import Versioned

__all__ = [
    "DEFAULT_NAMESPACE",
    "SLOT_TAGS",
    "RedisClient",
    "RedisEndpoint",
    "SealError",
    "SealedStore",
    "Sealer",
    "SealerStats",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "TlsFiles",
    "Versioned",
    "cluster_link",
    "connect",
    "connect_endpoint",
    "redis_max_lifetime",
    "scan_all",
    "slot_tag",
    "tag_of",
    "tagged",
    "verify_redis",
]
