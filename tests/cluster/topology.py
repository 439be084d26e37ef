"""The cluster run's processes, each on its own port of this machine: a private CA, PostgreSQL
(password and TLS), Redis with a replica and three Sentinels (ACL users and TLS) or a Redis
Cluster of three primaries and three replicas (`--redis cluster`, the same users and TLS), the
sandbox,
broker nodes (`sharelock serve --workers 2`, HTTPS with a certificate from the CA) sharing one
SoftHSM token, and HAProxy in front (TLS with an RSA-4096 certificate; TLS to the nodes too,
their certificate verified against the CA and its name, health checks on `/readyz`).

The Redis, Sentinel and HAProxy configurations are the files `deploy/` ships, rendered or fed
through the environment: what operators deploy is what this run tests.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sharelock.config import Settings
from sharelock.db import create_engine_for
from sharelock.demo import prepare
from sharelock.embedded import free_port
from tests.support.pki import Issued, PrivateCA
from tests.support.postgres_server import PrivatePostgres
from tests.support.processes import REPO, Child, clean_env, start_sandbox, wait_for
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_ha import RedisHA, RedisPki
from tests.support.whole_share import Partner, register_partner

HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
TOKEN_LABEL = "sharelock-cluster"
# The DNS name of the nodes' certificate that HAProxy checks (LB_NODES_NAME): the nodes are
# addressed by IP, and HAProxy matches a certificate's DNS names only.
NODES_NAME = "localhost"
READY_TIMEOUT_S = 90.0


def redis_env(settings: Settings) -> dict[str, str]:
    """The `SHARELOCK_REDIS_*` variables for `settings` (from `RedisHA.settings` or
    `RedisCluster.settings`)."""
    env: dict[str, str] = {}
    for name, addresses in (
        ("SHARELOCK_REDIS_SENTINELS", settings.redis_sentinels),
        ("SHARELOCK_REDIS_CLUSTER_NODES", settings.redis_cluster_nodes),
    ):
        if addresses:
            env[name] = ",".join(f"{h}:{p}" for h, p in addresses)
    plain = {
        "SHARELOCK_REDIS_SENTINEL_SERVICE": settings.redis_sentinel_service,
        "SHARELOCK_REDIS_USERNAME": settings.redis_username,
        "SHARELOCK_REDIS_SENTINEL_USERNAME": settings.redis_sentinel_username,
        "SHARELOCK_REDIS_TLS_CA_FILE": settings.redis_tls_ca_file,
        "SHARELOCK_REDIS_TLS_CERT_FILE": settings.redis_tls_cert_file,
        "SHARELOCK_REDIS_TLS_KEY_FILE": settings.redis_tls_key_file,
    }
    env |= {name: str(value) for name, value in plain.items() if value is not None}
    for name, secret in (
        ("SHARELOCK_REDIS_PASSWORD", settings.redis_password),
        ("SHARELOCK_REDIS_SENTINEL_PASSWORD", settings.redis_sentinel_password),
    ):
        if secret is not None:
            env[name] = secret.get_secret_value()
    return env


@dataclass
class Node:
    """One broker node: `sharelock serve --workers 2` with its own ports, over HTTPS with a
    certificate that `ca_cert` signed."""

    name: str
    child: Child
    port: int
    operator_port: int
    ca_cert: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        # Verified as HAProxy will verify it: a node whose TLS is wrong fails here, with its
        # log, rather than later as a balancer with no server UP.
        wait_for(
            f"https://{self.address}/readyz",
            self.child,
            verify=str(self.ca_cert),
            timeout=READY_TIMEOUT_S,
        )


@dataclass
class Balancer:
    """HAProxy running `deploy/haproxy/haproxy.cfg`."""

    child: Child
    https_port: int
    http_port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"


@dataclass
class Cluster:
    state: Path
    ca: PrivateCA
    postgres: PrivatePostgres
    redis: RedisHA | RedisCluster
    sandbox: Child
    sandbox_url: str
    partner: Partner
    node_env: dict[str, str]
    nodes: list[Node] = field(default_factory=list)
    balancers: list[Balancer] = field(default_factory=list)
    _certificate: Issued | None = None

    def logs(self) -> list[Path]:
        """Every log this run's processes wrote."""
        return sorted(p for p in self.state.rglob("*.log") if p.is_file())

    def start_node(self, name: str) -> Node:
        port, operator_port = free_port(), free_port()
        env = self.node_env | {
            "SHARELOCK_PORT": str(port),
            "SHARELOCK_OPERATOR_PORT": str(operator_port),
        }
        sharelock = str(Path(sys.executable).with_name("sharelock"))
        child = Child(name, [sharelock, "serve", "--workers", "2"], env, self.state / f"{name}.log")
        node = Node(name, child, port, operator_port, self.ca.ca_cert)
        node.wait_ready()
        self.nodes.append(node)
        return node

    def restart_node(self, node: Node) -> None:
        node.child.start()
        node.wait_ready()

    def start_balancer(self, name: str, backends: tuple[Node, Node], https_port: int) -> Balancer:
        """HAProxy on `https_port` (the issuer's) in front of `backends` (the same node twice
        for a one-node setup)."""
        if self._certificate is None:
            self._certificate = self.ca.issue("haproxy")  # RSA-4096, as seed 003 says
        cert = self._certificate
        http_port = free_port()
        env = clean_env() | {
            "LB_BIND": "127.0.0.1",
            "LB_HTTPS_PORT": str(https_port),
            "LB_HTTP_PORT": str(http_port),
            "LB_CERT": str(cert.bundle),
            "LB_NODE1": backends[0].address,
            "LB_NODE2": backends[1].address,
            # TLS to the nodes: their certificate must chain to the run's CA and name NODES_NAME.
            "LB_NODES_CA": str(self.ca.ca_cert),
            "LB_NODES_NAME": NODES_NAME,
        }
        child = Child(
            name, ["haproxy", "-db", "-f", str(HAPROXY_CFG)], env, self.state / f"{name}.log"
        )
        balancer = Balancer(child, https_port, http_port)
        wait_for(f"{balancer.url}/readyz", child, verify=str(self.ca.ca_cert), timeout=30)
        self.balancers.append(balancer)
        return balancer

    def stop_balancer(self, balancer: Balancer) -> None:
        balancer.child.stop()
        self.balancers.remove(balancer)

    def stop(self) -> None:
        for balancer in self.balancers:
            balancer.child.stop()
        for node in self.nodes:
            node.child.stop()
        self.sandbox.stop()


def _prepare(settings: Settings) -> Partner:
    """The shared token with its keys, the schema (as `serve` prepares them), and one
    registered partner."""
    prepare(settings)
    engine = create_engine_for(settings)
    try:
        return register_partner(engine, "Cluster Partner", "the fault run")
    finally:
        engine.dispose()


@contextlib.contextmanager
def cluster(
    state: Path, *, issuer_port: int, session_seconds: int, redis_mode: str = "sentinel"
) -> Iterator[Cluster]:
    """Everything but the broker nodes and HAProxy (started by the run, which controls them).
    `issuer_port` is HAProxy's HTTPS port, decided before any node starts (the issuer is
    part of every node's configuration); `redis_mode` is `sentinel` or `cluster`."""
    ca = PrivateCA(state / "ca")
    pki = RedisPki.create(state / "redis-pki")
    redis_setup: RedisHA | RedisCluster = (
        RedisCluster(state / "redis", pki=pki, maxmemory="256mb")
        if redis_mode == "cluster"
        else RedisHA(state / "redis", pki=pki, maxmemory="256mb")
    )
    with PrivatePostgres(state / "postgres", ca=ca) as postgres, redis_setup as redis_ha:
        base = Settings(
            state_dir=state / "broker",
            hsm_token_label=TOKEN_LABEL,
            database_url=postgres.url,
        )
        settings = redis_ha.settings(base)
        partner = _prepare(settings)
        sandbox, sandbox_url = start_sandbox(state)
        # One certificate for every node (RSA-4096, the CA's default), as a deployment may
        # share one: HAProxy checks the chain and NODES_NAME, `wait_ready` the chain and the
        # address.
        node_cert = ca.issue("node", hosts=(NODES_NAME, "127.0.0.1"))
        retention = {
            # A short session, so that the run can wait for every abandoned flow's expiry row.
            "SHARELOCK_RETENTION__SESSION": f"PT{session_seconds}S",
            "SHARELOCK_RETENTION__AUTHORIZATION_CODE": f"PT{session_seconds // 2}S",
            "SHARELOCK_RETENTION__ACCESS_TOKEN": f"PT{session_seconds - 5}S",
            "SHARELOCK_RETENTION__PUSHED_REQUEST": f"PT{session_seconds // 2}S",
        }
        node_env = (
            clean_env()
            | redis_env(settings)
            | retention
            | {
                "SHARELOCK_STATE_DIR": str(settings.state_path),
                "SHARELOCK_HSM_TOKEN_LABEL": TOKEN_LABEL,
                "SHARELOCK_DATABASE_URL": postgres.url,
                "SHARELOCK_SANDBOX_URL": sandbox_url,
                "SHARELOCK_ISSUER": f"https://127.0.0.1:{issuer_port}",
                # HTTPS on both listeners; the issuer stays HAProxy's URL, which partners call.
                "SHARELOCK_TLS_CERT_FILE": str(node_cert.cert),
                "SHARELOCK_TLS_KEY_FILE": str(node_cert.key),
                "SHARELOCK_TRUSTED_PROXIES": '["127.0.0.1"]',
                "SHARELOCK_EXPIRY_SWEEP_SECONDS": "1",
                "SHARELOCK_LOG_LEVEL": "info",
                # One generator address and one partner: the production limits would stop it.
                "SHARELOCK_LIMITS__PER_ADDRESS": "1000000/minute",
                "SHARELOCK_LIMITS__PAR_PER_PARTNER": "1000000/minute",
                "SHARELOCK_LIMITS__TOKEN_PER_PARTNER": "1000000/minute",
                "SHARELOCK_LIMITS__FAILED_AUTH_PER_ADDRESS": "1000000/minute",
            }
        )
        running = Cluster(state, ca, postgres, redis_ha, sandbox, sandbox_url, partner, node_env)
        try:
            yield running
        finally:
            running.stop()
