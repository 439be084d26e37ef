"""`RedisEndpoint`: where the store's Redis is and how to reach it, taken once from `Settings`.

Either one URL, or Sentinels and the name of the service they monitor (the client then asks
them for the current primary), or Redis Cluster nodes to start from (the client learns the
others and the slots from them). Both may add an ACL user and TLS. The value holds secrets
(passwords, possibly in the URL): its repr and `describe()` never show them.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from sharelock.config import Settings
from sharelock.errors import ConfigError


@dataclass(frozen=True)
class TlsFiles:
    """TLS towards Redis and the Sentinels, always with certificate and host name checks:
    `ca_file` is the operator's CA bundle (None: the system's), `cert_file`/`key_file` the
    client certificate when Redis asks for one (`tls-auth-clients yes`)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def options(self) -> dict[str, Any]:
        """redis-py's connection options; `ConfigError` naming the variable of a file that
        cannot be read, now rather than at the first connection."""
        for path, variable in (
            (self.ca_file, "SHARELOCK_REDIS_TLS_CA_FILE"),
            (self.cert_file, "SHARELOCK_REDIS_TLS_CERT_FILE"),
            (self.key_file, "SHARELOCK_REDIS_TLS_KEY_FILE"),
        ):
            if path is not None and not (path.is_file() and os.access(path, os.R_OK)):
                raise ConfigError(f"{variable}: cannot read {path}")
        return {
            "ssl": True,
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": True,
            "ssl_min_version": ssl.TLSVersion.TLSv1_2,
            "ssl_ca_certs": str(self.ca_file) if self.ca_file else None,
            "ssl_certfile": str(self.cert_file) if self.cert_file else None,
            "ssl_keyfile": str(self.key_file) if self.key_file else None,
        }


@dataclass(frozen=True)
class RedisEndpoint:
    """The Redis the store uses. Build it with `from_settings` (validated there) or directly
    in tests."""

    url: str | None = field(default=None, repr=False)
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    sentinel_username: str | None = None
    sentinel_password: SecretStr | None = None
    tls: TlsFiles | None = None
    cluster_nodes: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if [bool(self.url), bool(self.sentinels), bool(self.cluster_nodes)].count(True) != 1:
            raise ValueError("a RedisEndpoint has one of a URL, Sentinels or cluster nodes")
        if self.sentinels and not self.service:
            raise ValueError("Sentinels need the service name")

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisEndpoint:
        """The endpoint `settings` configure; `ConfigError` if they configure none (then the
        embedded redis-server is meant, `sharelock.embedded.redis_url_for`)."""
        if not settings.redis_configured:
            raise ConfigError(
                "none of SHARELOCK_REDIS_URL, SHARELOCK_REDIS_SENTINELS, "
                "SHARELOCK_REDIS_CLUSTER_NODES is set ('sharelock serve' and 'sharelock demo' "
                "start an embedded redis-server when all are unset)"
            )
        # TLS: a rediss:// URL, or (Sentinels have no URL to say it) a CA file.
        rediss = bool(settings.redis_url) and urlsplit(settings.redis_url or "").scheme == "rediss"
        without_url = bool(settings.redis_sentinels or settings.redis_cluster_nodes)
        tls_by_ca = without_url and settings.redis_tls_ca_file is not None
        tls = None
        if rediss or tls_by_ca:
            tls = TlsFiles(
                settings.redis_tls_ca_file,
                settings.redis_tls_cert_file,
                settings.redis_tls_key_file,
            )
        return cls(
            url=settings.redis_url or None,
            sentinels=settings.redis_sentinels,
            service=settings.redis_sentinel_service,
            username=settings.redis_username,
            password=settings.redis_password,
            sentinel_username=settings.redis_sentinel_username,
            sentinel_password=settings.redis_sentinel_password,
            tls=tls,
            cluster_nodes=settings.redis_cluster_nodes,
        )

    def describe(self) -> str:
        """Where, without credentials: for logs and error messages."""
        if self.sentinels:
            listed = ",".join(f"{host}:{port}" for host, port in self.sentinels)
            return f"service {self.service!r} through the Sentinels {listed}"
        if self.cluster_nodes:
            listed = ",".join(f"{host}:{port}" for host, port in self.cluster_nodes)
            return f"the Redis Cluster of {listed}"
        parts = urlsplit(self.url or "")
        if parts.scheme == "unix":
            return f"redis at {parts.path}"
        return f"redis at {parts.hostname}:{parts.port or 6379}"

    def credentials(self) -> dict[str, Any]:
        """The data nodes' ACL user, as redis-py options (nothing when the URL holds them)."""
        options: dict[str, Any] = {}
        if self.username is not None:
            options["username"] = self.username
        if self.password is not None:
            options["password"] = self.password.get_secret_value()
        return options

    def sentinel_credentials(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.sentinel_username is not None:
            options["username"] = self.sentinel_username
        if self.sentinel_password is not None:
            options["password"] = self.sentinel_password.get_secret_value()
        return options

    def tls_options(self) -> dict[str, Any]:
        return self.tls.options() if self.tls is not None else {}
