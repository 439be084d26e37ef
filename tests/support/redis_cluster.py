"""Redis Cluster for the tests: three primaries and three replicas on free loopback ports, TLS on
every link (clients, replication and the cluster bus), ACL users only.

Each node runs the shipped data-node template (`deploy/redis/redis.conf`) plus the cluster lines
of `deploy/redis/cluster.conf`, rendered by `redis_ha.render`: what operators deploy is what is
tested. The slots are assigned by `redis-cli --cluster create`, as an operator would.

    with RedisCluster(tmp_path / "cluster", pki=RedisPki.create(tmp_path / "pki")) as cluster:
        settings = cluster.settings(base)          # SHARELOCK_REDIS_CLUSTER_NODES & co.
        old = cluster.kill_primary_of(slot)        # SIGKILL
        cluster.wait_for_promotion(old)            # polls CLUSTER SHARDS, with a deadline

Waiting is always polling with a deadline (`wait_until`), never a fixed sleep.
"""

from __future__ import annotations

import socket
import subprocess
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
from pydantic import SecretStr

from sharelock.config import Settings
from sharelock.embedded import LOOPBACK, find_redis_server
from tests.support.redis_ha import (
    DEPLOY,
    REDIS_TEMPLATE,
    Process,
    RedisPki,
    Users,
    admin_client,
    render,
    wait_until,
)

CLUSTER_TEMPLATE = DEPLOY / "cluster.conf"
NODE_TIMEOUT_MS = 1000
START_TIMEOUT_S = 10.0
SETTLE_TIMEOUT_S = 30.0
PROMOTION_DEADLINE_S = 30.0
BUS_OFFSET = 10000  # Redis's cluster bus listens on the data port + 10000


def _free_port_pair() -> int:
    """A port free for the node and free at +10000 for its cluster bus."""
    for _ in range(200):
        with socket.socket() as data:
            data.bind((LOOPBACK, 0))
            port = int(data.getsockname()[1])
            if port + BUS_OFFSET > 65535:
                continue
            with socket.socket() as bus:
                try:
                    bus.bind((LOOPBACK, port + BUS_OFFSET))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free pair of ports for a cluster node")


class RedisCluster:
    """The whole cluster; a context manager that stops every node it started."""

    def __init__(
        self,
        directory: Path,
        *,
        pki: RedisPki,
        users: Users | None = None,
        primaries: int = 3,
        maxmemory: str = "64mb",
    ) -> None:
        self.directory = directory.resolve()
        self.pki = pki
        self.users = users or Users.random()
        self.maxmemory = maxmemory
        server = find_redis_server()
        self.nodes = [
            Process(f"node-{n}", self.directory / f"node-{n}", server, _free_port_pair())
            for n in range(primaries * 2)
        ]
        self._ranges_before: dict[str, list[tuple[int, int]]] = {}

    def __repr__(self) -> str:
        return f"RedisCluster(nodes={self.nodes})"

    # -- configuration -------------------------------------------------------------------

    def _node_config(self, node: Process) -> str:
        values = {
            "BIND": LOOPBACK,
            "PORT": str(node.port),
            "DIR": str(node.directory),
            "MAXMEMORY": self.maxmemory,
            "NODE_TIMEOUT_MS": str(NODE_TIMEOUT_MS),
            **self.pki.tls_values(),
            **self.users.redis_values(),
        }
        return render(REDIS_TEMPLATE, values) + render(CLUSTER_TEMPLATE, values)

    def settings(self, base: Settings, **changes: Any) -> Settings:
        """`base` pointed at this cluster as the broker is configured in production."""
        update: dict[str, Any] = {
            "redis_url": None,
            "redis_cluster_nodes": tuple(node.address for node in self.nodes[:2]),
            "redis_username": "sharelock",
            "redis_password": SecretStr(self.users.broker),
            "redis_tls_ca_file": self.pki.ca.ca_cert,
            "redis_tls_cert_file": self.pki.client.cert,
            "redis_tls_key_file": self.pki.client.key,
        }
        update.update(changes)
        return Settings(**{**base.model_dump(), **update})

    # -- inspection (synchronous, admin user) ----------------------------------------------

    def admin(self, node: Process, *, timeout: float = 1.0) -> redis.Redis:
        """A client of `node` alone (no redirection), which may read a replica's copy."""
        client = admin_client(node, self.users, self.pki, timeout, single_connection_client=True)
        try:
            client.execute_command("READONLY")  # a replica answers reads instead of MOVED
        except redis.RedisError:
            client.close()
            raise
        return client

    def node_at(self, port: int) -> Process:
        return next(node for node in self.nodes if node.port == port)

    def shards(self) -> list[tuple[Process, list[tuple[int, int]]]]:
        """Each primary with its slot ranges, as a running node sees them now."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                with self.admin(node) as client:
                    slots = client.execute_command("CLUSTER SLOTS")
            except redis.RedisError:
                continue
            owners: dict[int, list[tuple[int, int]]] = {}
            for start, end, primary, *_ in slots:
                owners.setdefault(int(primary[1]), []).append((int(start), int(end)))
            return [(self.node_at(port), ranges) for port, ranges in owners.items()]
        raise AssertionError("no cluster node answers")

    def primary_of(self, slot: int) -> Process:
        for primary, ranges in self.shards():
            if any(start <= slot <= end for start, end in ranges):
                return primary
        raise AssertionError(f"no primary serves slot {slot}")

    def primaries(self) -> list[Process]:
        return [primary for primary, _ in self.shards()]

    def _state_ok(self, node: Process) -> bool:
        if not node.running:
            raise AssertionError(f"{node} exited: {node.log_tail()}")
        with self.admin(node) as client:
            info = client.execute_command("CLUSTER INFO")
        if isinstance(info, dict):  # redis-py parses it, keys as str
            return bool(info.get("cluster_state") == "ok")
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def _answers(self, node: Process) -> bool:
        if not node.running:
            raise AssertionError(f"{node} exited: {node.log_tail()}")
        with self.admin(node) as client:
            return bool(client.ping())

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        try:
            for node in self.nodes:
                node.write_config(self._node_config(node))
                node.start()
            for node in self.nodes:
                wait_until(partial(self._answers, node), timeout=START_TIMEOUT_S, what=f"{node}")
            self._create()
            for node in self.nodes:
                wait_until(
                    partial(self._state_ok, node), timeout=SETTLE_TIMEOUT_S, what="cluster ok"
                )
        except BaseException:
            self.dump_logs()
            self.stop()
            raise
        return self

    def _create(self) -> None:
        tls = self.pki.client_options()
        command = [
            "redis-cli",
            "--tls",
            "--cacert",
            tls["ssl_ca_certs"],
            "--cert",
            tls["ssl_certfile"],
            "--key",
            tls["ssl_keyfile"],
            "--user",
            "admin",
            "--cluster",
            "create",
            *(f"{LOOPBACK}:{node.port}" for node in self.nodes),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        ]
        # The password through the environment, not the command line (`ps` shows that).
        done = subprocess.run(  # fixed executable and arguments
            command,
            env={"REDISCLI_AUTH": self.users.admin, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed: {done.stdout[-1500:]!r} {done.stderr!r}"
            )

    def kill(self, node: Process) -> None:
        """SIGKILL, as in a crash; a primary's slots are remembered for `wait_for_promotion`."""
        self._ranges_before[node.name] = next(
            (ranges for primary, ranges in self.shards() if primary is node), []
        )
        node.kill()

    def wait_for_promotion(self, old: Process, timeout: float = PROMOTION_DEADLINE_S) -> Process:
        """The replica that replaced `old` (killed with `kill`) once every slot is served
        again."""
        old_ranges = self._ranges_before[old.name]
        if not old_ranges:
            raise AssertionError(f"{old} was not a primary when it was killed")

        def promoted() -> Process | None:
            for primary, ranges in self.shards():
                if primary is not old and primary.running and ranges == old_ranges:
                    running = [node for node in self.nodes if node.running]
                    if all(self._state_ok(node) for node in running):
                        return primary
            return None

        return wait_until(promoted, timeout=timeout, what=f"promotion after {old}")

    def restart(self, node: Process) -> None:
        """Start a killed node again: it rejoins as a replica (nodes.conf in its directory)."""
        node.start()
        wait_until(partial(self._answers, node), timeout=START_TIMEOUT_S, what=f"{node}")
        wait_until(partial(self._state_ok, node), timeout=SETTLE_TIMEOUT_S, what="rejoined")

    def dump_logs(self) -> None:
        for process in self.nodes:
            print(f"--- {process.name} ---\n{process.log_tail()}")

    def stop(self) -> None:
        for process in self.nodes:
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
