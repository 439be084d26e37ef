"""The TTL store: Redis, holding only values sealed with keys Redis never sees.

Public surface: `SealedStore` (namespaced, expiring, sealed records; one-time reads),
`Sealer` (the envelope encryption), `connect` (the fail-fast Redis client), the errors, and
`redis_max_lifetime` (the expiry cap from the retention table).
"""

from sharelock.store.client import connect
from sharelock.store.errors import SealError, StoreConflict, StoreError, StoreUnavailable
from sharelock.store.keyspace import DEFAULT_NAMESPACE, redis_max_lifetime
from sharelock.store.redis_store import SealedStore, scan_all
from sharelock.store.sealing import Sealer, SealerStats

__all__ = [
    "DEFAULT_NAMESPACE",
    "SealError",
    "SealedStore",
    "Sealer",
    "SealerStats",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "connect",
    "redis_max_lifetime",
    "scan_all",
]
