"""`verify_redis`: the start-up check of the Redis settings, before anything is served.

What only a wrong setting explains stops start-up with a one-line `ConfigError` naming the
variable: no listed Sentinel answers, a Sentinel does not know the service, credentials are
refused, a certificate is not trusted, no listed cluster node answers, a listed node is not in
cluster mode, or the cluster does not place hash-tagged keys in one slot (a proxy that hides
the slots: the broker's scripts need them). What a running system also meets (one Sentinel of three
down, the primary unreachable in the middle of a failover) is only logged: the readiness probe
reports it, and the store answers 503 until it passes.

The check is synchronous (plain redis-py clients, closed at once): `sharelock serve` runs it
before starting its workers, `Broker.assemble` when it builds a Sentinel client.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AuthenticationError,
    NoPermissionError,
    RedisClusterException,
    RedisError,
)
from redis.retry import Retry

from sharelock.errors import ConfigError
from sharelock.store.endpoint import RedisEndpoint
from sharelock.store.keyspace import SLOT_TAGS, tagged

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0
SENTINELS = "SHARELOCK_REDIS_SENTINELS"
SERVICE = "SHARELOCK_REDIS_SENTINEL_SERVICE"
CLUSTER = "SHARELOCK_REDIS_CLUSTER_NODES"
TLS_HINT = (
    "check SHARELOCK_REDIS_TLS_CA_FILE (and SHARELOCK_REDIS_TLS_CERT_FILE/_KEY_FILE if Redis "
    "asks for a client certificate)"
)


def _tls_failure(exc: BaseException) -> str | None:
    """The TLS reason (e.g. 'CERTIFICATE_VERIFY_FAILED') when `exc` comes from a handshake.
    redis-py wraps the `ssl.SSLError` in a `ConnectionError`, sometimes only by its text."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return str(seen.reason or type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "SSL"):
        if marker in text:
            return "certificate verify failed" if "ERTIFICATE" in marker else "TLS error"
    return None


def _options(timeout: float) -> dict[str, Any]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": False,
    }


def _refusal(exc: RedisError, what: str, users: str) -> ConfigError | None:
    """A `ConfigError` for what only a setting explains, None for what may pass."""
    if isinstance(exc, AuthenticationError):
        return ConfigError(f"{users}: {what} refused the credentials")
    if isinstance(exc, NoPermissionError):
        return ConfigError(f"{users}: the ACL user may not do what the broker needs on {what}")
    reason = _tls_failure(exc)
    if reason is not None:
        return ConfigError(f"TLS with {what} failed ({reason}): {TLS_HINT}")
    return None


def _ask_sentinels(endpoint: RedisEndpoint, timeout: float) -> tuple[str, int] | None:
    """The primary's address as the first Sentinel that answers gives it (None if it
    considers it down); `ConfigError` if none answers or one does not know the service."""
    service = endpoint.service or ""
    options = {**_options(timeout), **endpoint.sentinel_credentials(), **endpoint.tls_options()}
    unanswered: list[str] = []
    primary: tuple[str, int] | None = None
    answered = False
    for host, port in endpoint.sentinels:
        where = f"the Sentinel {host}:{port}"
        try:
            with redis.Redis(host=host, port=port, **options) as sentinel:
                # The command the client itself sends for each new connection (redis-py's
                # `discover_master`): the check also proves the Sentinel ACL allows it.
                masters: dict[str, dict[str, Any]] = sentinel.sentinel_masters()
        except RedisError as exc:
            refusal = _refusal(
                exc, where, "SHARELOCK_REDIS_SENTINEL_USERNAME/SHARELOCK_REDIS_SENTINEL_PASSWORD"
            )
            if refusal is not None:
                raise refusal from None
            unanswered.append(f"{host}:{port} ({type(exc).__name__})")
            continue
        state = masters.get(service)
        if state is None:
            raise ConfigError(
                f"{SERVICE}: {where} does not monitor a service named {service!r} "
                f"(check {SERVICE} and {SENTINELS})"
            )
        answered = True
        if primary is None and state.get("is_master") and not state.get("is_sdown"):
            primary = (str(state["ip"]), int(state["port"]))
    if not answered:
        raise ConfigError(f"{SENTINELS}: no Sentinel answers ({', '.join(unanswered)})")
    if unanswered:
        log.warning("Redis Sentinels not answering at start-up: %s", ", ".join(unanswered))
    return primary


def _ping(client: redis.Redis, what: str, users: str) -> None:
    try:
        with client:
            client.ping()
    except RedisError as exc:
        refusal = _refusal(exc, what, users)
        if refusal is not None:
            raise refusal from None
        log.warning("%s does not answer at start-up (%s)", what, type(exc).__name__)


def _check_cluster(endpoint: RedisEndpoint, timeout: float, users: str) -> None:
    listed = ",".join(f"{host}:{port}" for host, port in endpoint.cluster_nodes)
    try:
        client = RedisCluster(
            startup_nodes=[
                ClusterNode(host, port)  # type: ignore[no-untyped-call]  # untyped in redis-py
                for host, port in endpoint.cluster_nodes
            ],
            **_options(timeout),
            **endpoint.credentials(),
            **endpoint.tls_options(),
        )
    except RedisClusterException as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, RedisError):
            refusal = _refusal(cause, "the Redis Cluster", users)
            if refusal is not None:
                raise refusal from None
        text = str(exc)
        if "not enabled" in text or "cluster mode" in text.lower():
            raise ConfigError(f"{CLUSTER}: {listed} is not in cluster mode") from None
        raise ConfigError(f"{CLUSTER}: no cluster node answers ({listed})") from None
    except RedisError as exc:
        refusal = _refusal(exc, "the Redis Cluster", users)
        if refusal is not None:
            raise refusal from None
        raise ConfigError(
            f"{CLUSTER}: no cluster node answers ({listed}; {type(exc).__name__})"
        ) from None
    with client:
        try:
            # A flow's keys carry one tag: the server must place them in one slot.
            tag = SLOT_TAGS[0]
            slots = {client.keyslot(tagged(tag, name)) for name in ("a", "b")}  # type: ignore[no-untyped-call]
            server_slots = {int(client.cluster_keyslot(tagged(tag, name))) for name in ("a", "b")}
        except RedisError as exc:
            refusal = _refusal(exc, "the Redis Cluster", users)
            if refusal is not None:
                raise refusal from None
            raise ConfigError(
                f"{CLUSTER}: the cluster does not answer CLUSTER KEYSLOT ({type(exc).__name__})"
                "; the broker needs hash tags"
            ) from None
        if len(server_slots) != 1 or server_slots != slots:
            raise ConfigError(
                f"{CLUSTER}: the cluster does not place hash-tagged keys in one slot; the broker "
                "needs hash tags"
            )
        state = client.cluster_info().get("cluster_state")
        if state != "ok":
            log.warning("the Redis Cluster reports state %s at start-up", state)


def verify_redis(endpoint: RedisEndpoint, *, timeout: float = CHECK_TIMEOUT) -> None:
    """`ConfigError` if `endpoint` cannot be right (see the module's docstring)."""
    users = "SHARELOCK_REDIS_USERNAME/SHARELOCK_REDIS_PASSWORD"
    if endpoint.cluster_nodes:
        _check_cluster(endpoint, timeout, users)
        return
    if endpoint.url:
        tls = endpoint.tls_options()
        tls.pop("ssl", None)  # the rediss:// scheme says it
        client = redis.Redis.from_url(
            endpoint.url, **_options(timeout), **endpoint.credentials(), **tls
        )
        _ping(client, endpoint.describe(), f"{users} (or the URL's credentials)")
        return
    primary = _ask_sentinels(endpoint, timeout)
    if primary is None:
        log.warning("no primary for %s at start-up (failover under way?)", endpoint.describe())
        return
    host, port = primary
    client = redis.Redis(
        host=host,
        port=port,
        **_options(timeout),
        **endpoint.credentials(),
        **endpoint.tls_options(),
    )
    _ping(client, f"the Redis primary {host}:{port}", users)
