"""The Redis client the store uses, and the one place Redis errors become `StoreUnavailable`.

The client fails fast and never retries by itself: a timed-out `GETDEL` or `SET NX` that the
client silently re-sent could apply twice, and a broker that waits on a stalled Redis holds the
user's request instead of answering 503. Callers decide whether to try again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError, WatchError

from sharelock.store.errors import StoreUnavailable

DEFAULT_SOCKET_TIMEOUT = 2.0
DEFAULT_MAX_CONNECTIONS = 256


def connect(
    url: str,
    *,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    connect_timeout: float | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> Redis:
    """A client for `url` (`redis://`, `rediss://` or `unix://`). Nothing is sent until the
    first command; use `SealedStore.ping()` to check the server answers.

    `max_connections` bounds the connections to Redis (each in-flight command holds one).
    Replies are parsed by hiredis when it is installed (`redis[hiredis]`), as redis-py prefers
    it by default. Values stay bytes (`decode_responses=False`): they are sealed binary."""
    if socket_timeout <= 0:
        raise ValueError("socket_timeout must be positive")
    # A full pool makes callers wait (up to the socket timeout) rather than fail at once.
    pool = BlockingConnectionPool.from_url(
        url,
        timeout=socket_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout if connect_timeout is not None else socket_timeout,
        retry=Retry(NoBackoff(), 0),
        max_connections=max_connections,
        decode_responses=False,
        health_check_interval=0,
    )
    return Redis.from_pool(pool)


@contextmanager
def redis_errors(operation: str) -> Iterator[None]:
    """Turn any Redis failure inside the block into `StoreUnavailable`, naming the operation
    and the error class only: Redis messages can quote arguments, and arguments are keys."""
    try:
        yield
    except WatchError:
        raise  # the compare-and-swap loop handles it
    except OutOfMemoryError:
        raise StoreUnavailable(
            f"redis refused {operation}: out of memory (maxmemory reached, noeviction)"
        ) from None
    except ResponseError as exc:
        raise StoreUnavailable(f"redis refused {operation} ({type(exc).__name__})") from None
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(
            f"redis unavailable during {operation} ({type(exc).__name__})"
        ) from None
