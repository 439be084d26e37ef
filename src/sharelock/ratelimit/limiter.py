"""`RateLimiter`: the broker's limits (`Settings.limits`) as moving windows in Redis.

The counting itself is the `limits` library's moving window (a Lua script over one Redis list
per key), on the broker's Redis so that a limit holds across workers and nodes. What this
module adds:

- **Names, not free text.** Each limit is one of `LimitName`; its rate comes from `Limits`.
- **Nothing personal in Redis in clear.** The identifiers a limit counts by (a client address,
  a login hash, a flow id) are replaced by an HMAC under a key derived once, in the HSM, from
  its keyed-hash key (`identifier_key_from`): every broker process sharing the token derives
  the same key, and a copy of Redis alone cannot be searched for an address.
- **Fail closed.** A Redis failure is `StoreUnavailable` (503), never a silent pass.
- **Refusals are counted** (`refusals`, exported as a metric) and `first_refusal` tells the
  caller whether this refusal is the first of its window, so that an audit row is written once
  per window and key, not once per request (a stranger hammering a limit must not turn each
  refused request into a 13-month audit row).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal, get_args

from limits import RateLimitItem, parse
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError, RedisError

from sharelock.config import Limits
from sharelock.errors import SharelockError
from sharelock.store import RedisClient, StoreUnavailable

LimitName = Literal[
    "per_address",
    "failed_auth_per_address",
    "par_per_partner",
    "token_per_partner",
    "wrong_passwords_per_flow",
    "wrong_passwords_per_login",
    "rights_per_address",
    "auditor_lookups",
]
LIMIT_NAMES: tuple[LimitName, ...] = get_args(LimitName)

KEY_PREFIX = "sl-ratelimit"
# The message the HSM's keyed hash turns into the identifiers' HMAC key (versioned, so a
# change of scheme is a change of key).
IDENTIFIER_KEY_LABEL = b"sharelock/rate-limit-identifiers/v1"


class RateLimited(SharelockError):
    """A limit is spent: answer 429 with `Retry-After: retry_after`."""

    status = 429

    def __init__(self, limit: LimitName, retry_after: int, error: str, description: str) -> None:
        super().__init__(description)
        self.limit = limit
        self.retry_after = max(1, retry_after)
        self.error = error
        self.description = description


def _out_of_memory(exc: StorageError) -> bool:
    cause = getattr(exc, "storage_error", None) or exc.__cause__
    return isinstance(cause, OutOfMemoryError) or str(cause).startswith("OOM")


def identifier_key_from(keyed_hash: str) -> bytes:
    """The identifiers' HMAC key from the HSM's keyed hash of `IDENTIFIER_KEY_LABEL`
    (`KeyLayer.keyed_hash`, formatted `hmac-sha256:<hex>`)."""
    _, _, hex_digest = keyed_hash.partition(":")
    key = bytes.fromhex(hex_digest)
    if len(key) != 32:
        raise ValueError("expected an HMAC-SHA256 digest")
    return key


class RateLimiter:
    def __init__(
        self,
        client: RedisClient,
        limits: Limits,
        identifier_key: bytes,
        *,
        cluster: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """`client` is the store's. On Redis Cluster, `cluster` is its start nodes and options
        (`sharelock.store.cluster_link`): `limits` builds its own cluster client from them, as
        it cannot take one made elsewhere."""
        self._client = client
        self._storage: RedisStorage | RedisClusterStorage
        if cluster is not None:
            nodes, options = cluster
            self._storage = RedisClusterStorage(
                f"async+redis+cluster://{nodes}",
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                wrap_exceptions=True,
                **options,
            )
        elif isinstance(client, Redis):
            # The store's client and pool, shared: one set of connections to Redis per process.
            self._storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                connection_pool=client.connection_pool,  # type: ignore[arg-type]  # too narrow
                key_prefix=KEY_PREFIX,
                wrap_exceptions=True,
            )
        else:
            raise TypeError("a cluster client needs its start nodes and options (`cluster`)")
        self._strategy = MovingWindowRateLimiter(self._storage)
        self._items: dict[LimitName, RateLimitItem] = {
            name: parse(getattr(limits, name)) for name in LIMIT_NAMES
        }
        self._key = identifier_key
        self.refusals: Counter[str] = Counter()
        # Told of each refusal by limit name (the metrics); never of the identifiers.
        self.on_refusal: list[Callable[[str], None]] = []
        self.uncounted: Counter[str] = Counter()  # requests let through while Redis was full

    def __repr__(self) -> str:
        return "RateLimiter()"

    def _identifier(self, parts: tuple[str, ...]) -> str:
        message = "\x1f".join(parts).encode("utf-8", "replace")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:40]

    def window_seconds(self, name: LimitName) -> int:
        return int(self._items[name].get_expiry())

    def amount(self, name: LimitName) -> int:
        """How many requests a window of `name` allows (what `remaining` answers before any)."""
        return int(self._items[name].amount)

    async def _retry_after(self, item: RateLimitItem, identifier: str) -> int:
        stats = await self._strategy.get_window_stats(item, identifier)
        return math.ceil(stats.reset_time - time.time())

    async def hit(self, name: LimitName, *parts: str) -> None:
        """Count one request against `name` for `parts`; `RateLimited` if none was left
        (the refused request is not counted)."""
        item, identifier = self._items[name], self._identifier(parts)
        try:
            if await self._strategy.hit(item, identifier):
                return
            retry_after = await self._retry_after(item, identifier)
        except StorageError as exc:
            if _out_of_memory(exc):
                # Redis full (maxmemory, noeviction): it answers, but takes no new writes.
                # Every new flow is refused then anyway (503), and the flows already under
                # way must go on (checklist 42): the request passes uncounted.
                self.uncounted[name] += 1
                return
            raise StoreUnavailable(f"rate limit {name}: redis unavailable") from exc
        self._refused(name)
        raise RateLimited(name, retry_after, "rate_limited", "too many requests; try later")

    async def check(self, name: LimitName, *parts: str) -> None:
        """`RateLimited` if `name` has nothing left for `parts`, without counting anything:
        for a limit counted only on failures, checked before the work that could fail."""
        item, identifier = self._items[name], self._identifier(parts)
        try:
            if await self._strategy.test(item, identifier):
                return
            retry_after = await self._retry_after(item, identifier)
        except StorageError as exc:
            raise StoreUnavailable(f"rate limit {name}: redis unavailable") from exc
        self._refused(name)
        raise RateLimited(name, retry_after, "rate_limited", "too many requests; try later")

    def _refused(self, name: LimitName) -> None:
        self.refusals[name] += 1
        for listener in self.on_refusal:
            listener(name)

    async def remaining(self, name: LimitName, *parts: str) -> int:
        item, identifier = self._items[name], self._identifier(parts)
        try:
            stats = await self._strategy.get_window_stats(item, identifier)
        except StorageError as exc:
            raise StoreUnavailable(f"rate limit {name}: redis unavailable") from exc
        return max(0, int(stats.remaining))

    async def first_refusal(self, name: LimitName, *parts: str) -> bool:
        """True for the first refusal of `name` for `parts` within one window (SET NX with
        the window as expiry): the one worth an audit row."""
        key = f"{KEY_PREFIX}:refused:{name}:{self._identifier(parts)}"
        try:
            return bool(await self._client.set(key, b"1", nx=True, ex=self.window_seconds(name)))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"rate limit {name}: redis unavailable") from exc
