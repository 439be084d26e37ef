"""Parsing and coherence of the Redis settings (`SHARELOCK_REDIS_*`), kept out of `config.py`.

The rules, each a one-line `ConfigError` naming the variables:
- a URL, Sentinels or Redis Cluster nodes, at most one; Sentinels need the service name, and
  the Sentinel-only settings without Sentinels are a mistake (the embedded redis-server would
  start instead of the Redis the operator meant);
- credentials in one place (the URL or `SHARELOCK_REDIS_USERNAME`/`_PASSWORD`), and TLS with
  certificate verification that cannot be turned off from the URL.

Messages carry variable names, host:port pairs and the service name, never a value that could
be a secret (a malformed Sentinel entry is named by its position, as it could hold one).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

from sharelock.errors import ConfigError

SENTINELS = "SHARELOCK_REDIS_SENTINELS"
CLUSTER = "SHARELOCK_REDIS_CLUSTER_NODES"
SERVICE = "SHARELOCK_REDIS_SENTINEL_SERVICE"
URL = "SHARELOCK_REDIS_URL"

_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
# Sentinel master names: what `sentinel monitor` accepts in a config file, without quoting.
_SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# redis-py reads these from a URL's query string: they would turn verification off.
_UNVERIFIED_TLS_OPTIONS = frozenset({"ssl_cert_reqs", "ssl_check_hostname", "ssl_ca_certs"})

Address = tuple[str, int]


class RedisSettings(Protocol):
    """The part of `Settings` these rules read (`Settings` itself; no import cycle)."""

    @property
    def redis_url(self) -> str | None: ...
    @property
    def redis_sentinels(self) -> tuple[Address, ...]: ...
    @property
    def redis_sentinel_service(self) -> str | None: ...
    @property
    def redis_cluster_nodes(self) -> tuple[Address, ...]: ...
    @property
    def redis_username(self) -> str | None: ...
    @property
    def redis_password(self) -> SecretStr | None: ...
    @property
    def redis_sentinel_username(self) -> str | None: ...
    @property
    def redis_sentinel_password(self) -> SecretStr | None: ...
    @property
    def redis_tls_ca_file(self) -> Path | None: ...
    @property
    def redis_tls_cert_file(self) -> Path | None: ...
    @property
    def redis_tls_key_file(self) -> Path | None: ...


def _address(entry: object, position: int) -> Address:
    where = f"entry {position} is not host:port"
    if isinstance(entry, tuple | list) and len(entry) == 2:
        host, port = str(entry[0]), entry[1]
    elif isinstance(entry, str):
        host, sep, port_text = entry.strip().rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError(where)
        port = int(port_text)
    else:
        raise ValueError(where)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # [::1]:26379
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(where) from None
    elif not _HOSTNAME.fullmatch(host):
        raise ValueError(where)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError(f"entry {position}: the port must be 1-65535")
    return host, port


def parse_addresses(value: object) -> tuple[Address, ...]:
    """`host:port,host:port` (the environment) or a sequence of `host:port` strings or
    `(host, port)` pairs (Python) as a tuple of pairs; `ValueError` for anything else. For the
    Sentinels and the Redis Cluster nodes."""
    if value is None:
        return ()
    entries: Iterable[object]
    if isinstance(value, str):
        if not value.strip():
            return ()
        entries = value.split(",")
    elif isinstance(value, tuple | list):
        entries = value
    else:
        raise ValueError("expected host:port,host:port")
    addresses = tuple(_address(entry, n) for n, entry in enumerate(entries, start=1))
    if len(set(addresses)) != len(addresses):
        raise ValueError("an address is listed twice")
    return addresses


def _check_url(url: str, settings: RedisSettings) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"{URL}: must be a redis://, rediss:// or unix:// URL")
    if parts.password and settings.redis_password is not None:
        raise ConfigError(
            f"{URL} holds a password and SHARELOCK_REDIS_PASSWORD is set: keep one of them"
        )
    if parts.username and settings.redis_username is not None:
        raise ConfigError(
            f"{URL} holds a user name and SHARELOCK_REDIS_USERNAME is set: keep one of them"
        )
    if _UNVERIFIED_TLS_OPTIONS & set(parse_qs(parts.query)):
        raise ConfigError(
            f"{URL}: TLS options in the URL are refused (certificates are always verified); "
            "set SHARELOCK_REDIS_TLS_CA_FILE for a private CA"
        )
    if _tls_files(settings) and parts.scheme != "rediss":
        raise ConfigError(
            f"SHARELOCK_REDIS_TLS_* is set but {URL} is not rediss://: use a rediss:// URL"
        )


def _tls_files(settings: RedisSettings) -> bool:
    return any(
        path is not None
        for path in (
            settings.redis_tls_ca_file,
            settings.redis_tls_cert_file,
            settings.redis_tls_key_file,
        )
    )


def check_redis_settings(settings: RedisSettings) -> None:
    """`ConfigError` unless the Redis settings make one coherent connection."""
    sentinel_only = {
        SERVICE: settings.redis_sentinel_service,
        "SHARELOCK_REDIS_SENTINEL_USERNAME": settings.redis_sentinel_username,
        "SHARELOCK_REDIS_SENTINEL_PASSWORD": settings.redis_sentinel_password,
    }
    chosen = [
        name
        for name, value in (
            (URL, settings.redis_url),
            (SENTINELS, settings.redis_sentinels),
            (CLUSTER, settings.redis_cluster_nodes),
        )
        if value
    ]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)} are exclusive: set only one of them")
    if settings.redis_sentinels:
        service = settings.redis_sentinel_service
        if not service:
            raise ConfigError(f"{SERVICE}: required with {SENTINELS} (the monitored name)")
        if not _SERVICE.fullmatch(service):
            raise ConfigError(f"{SERVICE}: letters, digits, '.', '_' and '-' only (1-64)")
    else:
        stray = [name for name, value in sentinel_only.items() if value is not None]
        if stray:
            raise ConfigError(f"{', '.join(stray)} is set but {SENTINELS} is not")
    if settings.redis_username is not None and settings.redis_password is None:
        raise ConfigError("SHARELOCK_REDIS_USERNAME needs SHARELOCK_REDIS_PASSWORD")
    if settings.redis_sentinel_username is not None and settings.redis_sentinel_password is None:
        raise ConfigError(
            "SHARELOCK_REDIS_SENTINEL_USERNAME needs SHARELOCK_REDIS_SENTINEL_PASSWORD"
        )
    if (settings.redis_tls_cert_file is None) != (settings.redis_tls_key_file is None):
        raise ConfigError(
            "SHARELOCK_REDIS_TLS_CERT_FILE and SHARELOCK_REDIS_TLS_KEY_FILE go together"
        )
    if settings.redis_url:
        _check_url(settings.redis_url, settings)
    elif not chosen and (
        settings.redis_username is not None
        or settings.redis_password is not None
        or _tls_files(settings)
    ):
        # Without a URL, Sentinels or cluster nodes the embedded redis-server runs and would
        # ignore them.
        raise ConfigError(
            f"SHARELOCK_REDIS_USERNAME/_PASSWORD/_TLS_* are set but none of {URL}, "
            f"{SENTINELS}, {CLUSTER} is"
        )
