"""The Redis client the store uses, and the one place Redis errors become `StoreUnavailable`.

The client fails fast and never retries by itself: a timed-out `GETDEL` or `SET NX` that the
client silently re-sent could apply twice, and a broker that waits on a stalled Redis holds the
user's request instead of answering 503. Callers decide whether to try again.

`connect_endpoint` gives the same client for a `RedisEndpoint`: a URL, or Sentinels. Through
Sentinels every new connection asks them for the current primary (redis-py's
`SentinelConnectionPool`): after a failover, the command that meets the dead or demoted primary
fails (`StoreUnavailable`; a demoted primary's READONLY reply becomes a connection error and
drops the connection), and the next one reaches the new primary.

For Redis Cluster nodes it gives redis-py's cluster client, as fail-fast: a command sent to a
primary that died fails (`StoreUnavailable`) instead of being re-sent; the client then relearns
the slots, and once the cluster has promoted a replica the next command reaches it. Redirections
(MOVED, ASK) are followed: they are answers, not failures, and nothing was applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError

from sharelock.store.endpoint import RedisEndpoint
from sharelock.store.errors import StoreUnavailable

RedisClient = Redis | RedisCluster

DEFAULT_SOCKET_TIMEOUT = 2.0
DEFAULT_MAX_CONNECTIONS = 256


def connect(
    url: str,
    *,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    connect_timeout: float | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    **options: Any,
) -> Redis:
    """A client for `url` (`redis://`, `rediss://` or `unix://`). Nothing is sent until the
    first command; use `SealedStore.ping()` to check the server answers. `options` are more
    redis-py connection options (an ACL user, TLS files: `connect_endpoint`).

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
        **options,
    )
    return Redis.from_pool(pool)


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (connections to the current primary) that waits for a free connection
    when full, as `connect`'s does, instead of failing at once. Closing it also closes the
    connections to the Sentinels, which redis-py leaves open."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        # `inuse_connections=False` is the pool dropping idle links to a former primary; a
        # full disconnect is the client closing.
        if inuse_connections:
            await self.sentinel_manager.aclose()


def _fail_fast(socket_timeout: float, connect_timeout: float | None) -> dict[str, Any]:
    if socket_timeout <= 0:
        raise ValueError("socket_timeout must be positive")
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout
        if connect_timeout is not None
        else socket_timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }


def sentinel_manager(endpoint: RedisEndpoint, **fail_fast: Any) -> Sentinel:
    """The Sentinels of `endpoint`, with their own credentials and the same TLS."""
    return Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        list(endpoint.sentinels),
        sentinel_kwargs={
            **fail_fast,
            **endpoint.sentinel_credentials(),
            **endpoint.tls_options(),
            "decode_responses": False,
        },
    )


def cluster_link(
    endpoint: RedisEndpoint,
    *,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    connect_timeout: float | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> tuple[str, dict[str, Any]]:
    """The cluster's start nodes (`host:port,host:port`) and redis-py's `RedisCluster`
    options: fail-fast as `connect`'s, with the endpoint's ACL user and TLS. For the broker's
    client, and for a companion that must build its own (the rate limiter's `limits`)."""
    nodes = ",".join(f"{host}:{port}" for host, port in endpoint.cluster_nodes)
    options: dict[str, Any] = {
        **_fail_fast(socket_timeout, connect_timeout),
        "max_connections": max_connections,  # per node
        "require_full_coverage": True,
        # After a node fails, learn the slots again at the next command, not 5 commands later.
        "reinitialize_steps": 1,
        "decode_responses": False,
        **endpoint.credentials(),
        **endpoint.tls_options(),
    }
    options.pop("health_check_interval")  # not a cluster option
    return nodes, options


def connect_endpoint(
    endpoint: RedisEndpoint,
    *,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    connect_timeout: float | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> RedisClient:
    """A client for `endpoint`, fail-fast and bounded as `connect`'s: for a URL, `connect`
    with the endpoint's ACL user and TLS files; for Sentinels, a client of the service's
    current primary; for cluster nodes, a cluster client (`cluster_link`). Nothing is sent
    until the first command (see `verify_redis`)."""
    fail_fast = _fail_fast(socket_timeout, connect_timeout)
    if endpoint.cluster_nodes:
        _, options = cluster_link(
            endpoint,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
        )
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in endpoint.cluster_nodes],
            **options,
        )
    if endpoint.url:
        tls = endpoint.tls_options()
        tls.pop("ssl", None)  # the rediss:// scheme says it
        return connect(
            endpoint.url,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            max_connections=max_connections,
            **endpoint.credentials(),
            **tls,
        )
    if endpoint.service is None:  # RedisEndpoint guarantees it; mypy does not know
        raise ValueError("Sentinels need the service name")
    client: Redis = sentinel_manager(endpoint, **fail_fast).master_for(
        endpoint.service,
        redis_class=Redis,
        connection_pool_class=BlockingSentinelPool,
        **fail_fast,
        **endpoint.credentials(),
        **endpoint.tls_options(),
        timeout=socket_timeout,  # waiting for a free connection of the full pool
        max_connections=max_connections,
        decode_responses=False,
    )
    return client


@contextmanager
def redis_errors(operation: str) -> Iterator[None]:
    """Turn any Redis failure inside the block into `StoreUnavailable`, naming the operation
    and the error class only: Redis messages can quote arguments, and arguments are keys."""
    try:
        yield
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
