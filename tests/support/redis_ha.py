"""Redis with Sentinel for the tests: a primary, one replica and three Sentinels, on free
loopback ports in a temporary directory, TLS on every link, ACL users only.

Each process runs the shipped templates (`deploy/redis/redis.conf`, `deploy/redis/sentinel.conf`)
rendered by `render`: the files operators deploy are the ones tested.

    with RedisHA(tmp_path / "ha", pki=RedisPki.create(tmp_path / "pki")) as ha:
        settings = ha.settings(base)       # SHARELOCK_REDIS_SENTINELS & co. for the broker
        old = ha.kill_primary()            # SIGKILL
        new = ha.wait_for_new_primary(old) # polls the Sentinels, with a deadline
        ha.restart(old)                    # comes back; Sentinel makes it a replica

Waiting is always polling with a deadline (`wait_until`), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
import signal
import string
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self, TypeVar

import redis
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from sharelock.config import Settings
from sharelock.embedded import LOOPBACK, find_redis_server, free_port
from sharelock.keys import KeyLayer
from sharelock.store import RedisEndpoint, SealedStore
from tests.support.pki import Issued, PrivateCA

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "redis"
REDIS_TEMPLATE = DEPLOY / "redis.conf"
SENTINEL_TEMPLATE = DEPLOY / "sentinel.conf"
SERVICE = "sharelock"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
START_TIMEOUT_S = 10.0
SETTLE_TIMEOUT_S = 20.0
FAILOVER_DEADLINE_S = 30.0
SENTINEL_EXECUTABLE = "/usr/bin/redis-sentinel"

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """`probe()`'s first truthy result, polling until `timeout`; AssertionError naming `what`
    (and the last exception) if it never comes."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except (redis.RedisError, OSError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} ({last!r})")
        time.sleep(interval)


def sha256_hex(password: str) -> str:
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def render(template: Path, values: Mapping[str, str]) -> str:
    """`template` with every `${NAME}` replaced; KeyError for a placeholder without a value.
    Values are single config tokens: whitespace, quotes or `#` would change the line."""
    for name, value in values.items():
        if not value or any(c in value for c in " \t\r\n\"'#\\"):
            raise ValueError(f"{name}: not a single redis.conf token")
    return string.Template(template.read_text(encoding="utf-8")).substitute(values)


@dataclass(frozen=True)
class RedisPki:
    """The setup's CA, the servers' certificate, and the client certificate that the nodes,
    the Sentinels and the broker show (`tls-auth-clients yes`)."""

    ca: PrivateCA
    server: Issued
    client: Issued

    @classmethod
    def create(cls, directory: Path) -> RedisPki:
        ca = PrivateCA(directory)
        return cls(ca, ca.issue("redis"), ca.issue("redis-client", client=True))

    def tls_values(self) -> dict[str, str]:
        return {
            "TLS_CERT_FILE": str(self.server.cert),
            "TLS_KEY_FILE": str(self.server.key),
            "TLS_CLIENT_CERT_FILE": str(self.client.cert),
            "TLS_CLIENT_KEY_FILE": str(self.client.key),
            "TLS_CA_FILE": str(self.ca.ca_cert),
        }

    def client_options(self) -> dict[str, Any]:
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.ca.ca_cert),
            "ssl_certfile": str(self.client.cert),
            "ssl_keyfile": str(self.client.key),
            "ssl_check_hostname": True,
        }


@dataclass(frozen=True)
class Users:
    """Random passwords for the users of the templates (never printed)."""

    broker: str
    replication: str
    monitor: str
    admin: str
    peer: str
    client: str

    @classmethod
    def random(cls) -> Users:
        return cls(*(secrets.token_hex(24) for _ in range(6)))

    def redis_values(self) -> dict[str, str]:
        return {
            "BROKER_USER": "sharelock",
            "BROKER_PASSWORD_SHA256": sha256_hex(self.broker),
            "REPLICATION_USER": "replication",
            "REPLICATION_PASSWORD": self.replication,
            "REPLICATION_PASSWORD_SHA256": sha256_hex(self.replication),
            "MONITOR_USER": "sentinel",
            "MONITOR_PASSWORD_SHA256": sha256_hex(self.monitor),
            "ADMIN_USER": "admin",
            "ADMIN_PASSWORD_SHA256": sha256_hex(self.admin),
        }

    def sentinel_values(self) -> dict[str, str]:
        return {
            "MONITOR_USER": "sentinel",
            "MONITOR_PASSWORD": self.monitor,
            "PEER_USER": "peer",
            "PEER_PASSWORD": self.peer,
            "PEER_PASSWORD_SHA256": sha256_hex(self.peer),
            "CLIENT_USER": "sharelock",
            "CLIENT_PASSWORD_SHA256": sha256_hex(self.client),
        }


def admin_client(
    node: Process, users: Users, pki: RedisPki, timeout: float, **options: Any
) -> redis.Redis:
    """A client of `node` as the admin user (TLS, no retry), for the tests' inspection."""
    return redis.Redis(
        host=LOOPBACK,
        port=node.port,
        username="admin",
        password=users.admin,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        **pki.client_options(),
        **options,
    )


class Process:
    """One redis-server or redis-sentinel on a fixed port, its config written once (0600)
    and then left to the process, which may rewrite it (Sentinel does; CONFIG REWRITE)."""

    def __init__(self, name: str, directory: Path, executable: str, port: int) -> None:
        self.name = name
        self.directory = directory
        self.executable = executable
        self.port = port
        self.config = directory / f"{name}.conf"
        self.log_path = directory / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"Process({self.name!r}, port={self.port}, pid={self.pid})"

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def write_config(self, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.config.write_text(text, encoding="utf-8")
        self.config.chmod(0o600)

    def start(self) -> None:
        if self.running:
            return
        self._close_log()
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # fixed executable and arguments
            [self.executable, str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(5)
        self._close_log()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, limit: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"


class RedisHA:
    """The whole setup; a context manager that stops every process it started."""

    def __init__(
        self,
        directory: Path,
        *,
        pki: RedisPki,
        users: Users | None = None,
        sentinels: int = 3,
        quorum: int = 2,
        maxmemory: str = "64mb",
    ) -> None:
        self.directory = directory.resolve()
        self.pki = pki
        self.users = users or Users.random()
        self.quorum = quorum
        self.maxmemory = maxmemory
        server = find_redis_server()
        if shutil.which(SENTINEL_EXECUTABLE) is None:
            raise RuntimeError("redis-sentinel is not installed (apt-get install redis-sentinel)")
        self.nodes = [
            Process(name, self.directory / name, server, free_port())
            for name in ("node-a", "node-b")
        ]
        self.sentinels = [
            Process(
                f"sentinel-{n}", self.directory / f"sentinel-{n}", SENTINEL_EXECUTABLE, free_port()
            )
            for n in range(1, sentinels + 1)
        ]

    def __repr__(self) -> str:
        return f"RedisHA(nodes={self.nodes}, sentinels={self.sentinels})"

    # -- configuration -------------------------------------------------------------------

    def _node_config(self, node: Process, replica_of: Process | None) -> str:
        text = render(
            REDIS_TEMPLATE,
            {
                "BIND": LOOPBACK,
                "PORT": str(node.port),
                "DIR": str(node.directory),
                "MAXMEMORY": self.maxmemory,
                **self.pki.tls_values(),
                **self.users.redis_values(),
            },
        )
        if replica_of is not None:
            text += f"replicaof {LOOPBACK} {replica_of.port}\n"
        return text

    def _sentinel_config(self, sentinel: Process, primary: Process) -> str:
        return render(
            SENTINEL_TEMPLATE,
            {
                "BIND": LOOPBACK,
                "PORT": str(sentinel.port),
                "DIR": str(sentinel.directory),
                "SERVICE": SERVICE,
                "PRIMARY_HOST": LOOPBACK,
                "PRIMARY_PORT": str(primary.port),
                "QUORUM": str(self.quorum),
                "DOWN_AFTER_MS": str(DOWN_AFTER_MS),
                "FAILOVER_TIMEOUT_MS": str(FAILOVER_TIMEOUT_MS),
                **self.pki.tls_values(),
                **self.users.sentinel_values(),
            },
        )

    def settings(self, base: Settings, **changes: Any) -> Settings:
        """`base` pointed at this setup as the broker is configured in production."""
        update: dict[str, Any] = {
            "redis_url": None,
            "redis_sentinels": tuple(s.address for s in self.sentinels),
            "redis_sentinel_service": SERVICE,
            "redis_username": "sharelock",
            "redis_password": SecretStr(self.users.broker),
            "redis_sentinel_username": "sharelock",
            "redis_sentinel_password": SecretStr(self.users.client),
            "redis_tls_ca_file": self.pki.ca.ca_cert,
            "redis_tls_cert_file": self.pki.client.cert,
            "redis_tls_key_file": self.pki.client.key,
        }
        update.update(changes)
        # Validated like the environment would be (model_copy alone validates nothing).
        return Settings(**{**base.model_dump(), **update})

    # -- clients for inspection (synchronous, admin user) -------------------------------

    def admin(self, node: Process, *, timeout: float = 1.0) -> redis.Redis:
        return admin_client(node, self.users, self.pki, timeout)

    def sentinel_client(self, sentinel: Process, *, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(
            host=LOOPBACK,
            port=sentinel.port,
            username="peer",
            password=self.users.peer,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            **self.pki.client_options(),
        )

    def role(self, node: Process) -> str:
        with self.admin(node) as client:
            return str(client.execute_command("ROLE")[0].decode())

    def node_at(self, port: int) -> Process:
        return next(node for node in self.nodes if node.port == port)

    def _master_state(self, sentinel: Process) -> dict[str, Any] | None:
        with self.sentinel_client(sentinel) as client:
            masters: dict[str, dict[str, Any]] = client.sentinel_masters()
        return masters.get(SERVICE)

    def primary(self) -> Process:
        """The primary as the Sentinels' majority sees it now."""
        votes: dict[int, int] = {}
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            try:
                state = self._master_state(sentinel)
            except redis.RedisError:
                continue
            if state is not None:
                votes[int(state["port"])] = votes.get(int(state["port"]), 0) + 1
        if not votes:
            raise AssertionError("no Sentinel answers")
        return self.node_at(max(votes, key=lambda port: votes[port]))

    def replicas(self) -> list[Process]:
        primary = self.primary()
        return [node for node in self.nodes if node is not primary]

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        primary, replica = self.nodes
        primary.write_config(self._node_config(primary, None))
        replica.write_config(self._node_config(replica, primary))
        for sentinel in self.sentinels:
            sentinel.write_config(self._sentinel_config(sentinel, primary))
        try:
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                wait_until(partial(self._answers, node), timeout=START_TIMEOUT_S, what=f"{node}")
            wait_until(self._replica_linked, timeout=SETTLE_TIMEOUT_S, what="replication")
            for sentinel in self.sentinels:
                sentinel.start()
            wait_until(self._sentinels_settled, timeout=SETTLE_TIMEOUT_S, what="Sentinels")
        except BaseException:
            self.dump_logs()
            self.stop()
            raise
        return self

    def _answers(self, node: Process) -> bool:
        if not node.running:
            raise AssertionError(f"{node} exited: {node.log_tail()}")
        with self.admin(node) as client:
            return bool(client.ping())

    def _replica_linked(self) -> bool:
        with self.admin(self.nodes[1]) as client:
            info = client.info("replication")
        return bool(info.get("master_link_status") == "up")

    def _sentinels_settled(self) -> bool:
        """Every Sentinel sees the primary up, the replica, and all the other Sentinels."""
        for sentinel in self.sentinels:
            if not sentinel.running:
                raise AssertionError(f"{sentinel} exited: {sentinel.log_tail()}")
            state = self._master_state(sentinel)
            if state is None or state["is_sdown"] or state["is_odown"]:
                return False
            if state["num-other-sentinels"] != len(self.sentinels) - 1:
                return False
            if state["num-slaves"] < len(self.nodes) - 1:
                return False
        return True

    def kill_primary(self) -> Process:
        """SIGKILL the current primary; returns it (to `restart` it later)."""
        primary = self.primary()
        primary.kill()
        return primary

    def wait_for_new_primary(self, old: Process, timeout: float = FAILOVER_DEADLINE_S) -> Process:
        """Poll the Sentinels until a majority names another primary, and that node says it is
        one (ROLE); returns it."""

        def promoted() -> Process | None:
            candidate = self.primary()
            if candidate is old or not candidate.running:
                return None
            return candidate if self.role(candidate) == "master" else None

        return wait_until(promoted, timeout=timeout, what="a new primary")

    def restart(self, node: Process, *, as_replica_of: Process | None = None) -> None:
        """Start `node` again and wait until it answers. With `as_replica_of` it comes back
        as that node's replica (its config file, which Sentinel may have rewritten, gets that
        `replicaof` line) and this waits until it has synchronised: without persistence, this
        is how a crashed node must rejoin (docs/operations.md), never as an empty primary."""
        if as_replica_of is not None:
            lines = [
                line
                for line in node.config.read_text(encoding="utf-8").splitlines()
                if not line.startswith(("replicaof ", "slaveof "))
            ]
            lines.append(f"replicaof {LOOPBACK} {as_replica_of.port}")
            node.write_config("\n".join(lines) + "\n")
        node.start()
        wait_until(lambda: self._answers(node), timeout=START_TIMEOUT_S, what=f"{node}")
        if as_replica_of is not None:

            def linked() -> bool:
                with self.admin(node) as client:
                    info = client.info("replication")
                return bool(
                    info.get("role") == "slave"
                    and info.get("master_port") == as_replica_of.port
                    and info.get("master_link_status") == "up"
                )

            wait_until(linked, timeout=FAILOVER_DEADLINE_S, what=f"{node} to replicate")

    def dump_logs(self) -> None:
        for process in (*self.nodes, *self.sentinels):
            print(f"--- {process.name} ---\n{process.log_tail()}")

    def stop(self) -> None:
        for process in (*self.sentinels, *self.nodes):
            process.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class Administered(Protocol):
    """A setup with an admin client per node (`RedisHA`, `redis_cluster.RedisCluster`)."""

    def admin(self, node: Process, *, timeout: float = 1.0) -> redis.Redis: ...


def keys_and_values(ha: Administered, node: Process) -> Iterator[tuple[bytes, bytes]]:
    """Every key of `node` with its DUMP (the serialised value, whatever its type) and, for
    strings, its GET: what a copy of that node's memory would give."""
    with ha.admin(node) as client:
        for key in client.scan_iter(count=500):
            dumped = client.dump(key) or b""
            plain = client.get(key) if client.type(key) == b"string" else b""
            yield key, dumped + b"\0" + (plain or b"")


# -- for the tests of the broker's store on these setups -------------------------------------

CLIENT_TIMEOUT_S = 1.0


def soon(seconds: float = 600) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def store_for(settings: Settings, key_layer: KeyLayer) -> SealedStore:
    """The broker's store for `settings` (Sentinels or a cluster), with a short timeout."""
    return SealedStore.for_endpoint(
        RedisEndpoint.from_settings(settings),
        key_layer,
        settings.retention,
        socket_timeout=CLIENT_TIMEOUT_S,
    )


async def waited(probe: Callable[[], object], what: str, timeout: float = 20) -> None:
    """`wait_until` off the event loop: while it polls, the loop keeps handling the client's
    sockets (an idle connection that a server closes is seen closed), as in a running broker."""
    await asyncio.to_thread(wait_until, probe, timeout=timeout, what=what)
