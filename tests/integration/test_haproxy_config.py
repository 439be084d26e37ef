"""`deploy/haproxy/haproxy.cfg`, the very file a deployment uses, checked and then run.

`haproxy -c` validates it with the environment a deployment sets; then a real HAProxy serves
it on free ports in front of two small HTTPS servers that stand for broker nodes (they answer
`/readyz` and echo the headers they received, with a certificate from the test CA, as `sharelock
serve` does with SHARELOCK_TLS_CERT_FILE), and a client that trusts only the test CA checks
what partners and people would meet: TLS 1.2 or 1.3 with strong suites only, HSTS,
X-Forwarded-For and -Proto set by the proxy, both nodes used, a node whose `/readyz` says 503
taken out of rotation and put back, plain HTTP redirected. Towards the nodes, HAProxy speaks TLS
and verifies them: a node whose certificate another CA signed, or that names another host, is
marked DOWN and never receives a request.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from sharelock.embedded import free_port
from tests.support.pki import Issued, PrivateCA

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
DEADLINE_S = 20.0

pytestmark = pytest.mark.skipif(
    not Path(HAPROXY).exists(), reason="haproxy is not installed (deploy/system-packages.sh)"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # HAProxy closes health-check connections as soon as it has the status line, and
        # aborts the handshake with a node it does not trust: a reset or a TLS alert seen by
        # the handler then is expected, anything else is still reported.
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@dataclass
class Node:
    """A stand-in for a broker node, over HTTPS with `certificate`: `/readyz` answers `ready`'s
    status, anything else echoes the node's name and the request headers as JSON. `requests`
    counts every request that reached it, checks included."""

    name: str
    certificate: Issued
    ready: bool = True
    requests: int = 0
    server: _Server = field(init=False)

    def __post_init__(self) -> None:
        node = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                node.requests += 1
                if self.path == "/readyz":
                    status = 200 if node.ready else 503
                    body = b'{"status": "ready"}' if node.ready else b'{"status": "unavailable"}'
                else:
                    status = 200
                    body = json.dumps({"node": node.name, "headers": dict(self.headers)}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: HAProxy's checks would fill the test output

        self.server = _Server(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate.cert, self.certificate.key)
        # The handshake at the first read, in the connection's own thread: done in accept(),
        # one client that never completes it would stall the whole server.
        self.server.socket = context.wrap_socket(
            self.server.socket, server_side=True, do_handshake_on_connect=False
        )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Proxy:
    https_url: str
    http_url: str
    https_port: int
    ca: Path
    nodes: dict[str, Node]
    log: Path

    def client(self) -> httpx.Client:
        # A new connection per request: HAProxy balances connections as well as requests, and
        # the test must see each request's own route.
        context = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(
            verify=context,
            timeout=5,
            limits=httpx.Limits(max_keepalive_connections=0),
        )


# The name HAProxy checks on the nodes' certificates (LB_NODES_NAME): nodes are addressed by
# IP here, and HAProxy matches only DNS names, which the test certificates carry as well.
NODES_NAME = "localhost"


@dataclass(frozen=True)
class Pki:
    ca: PrivateCA
    bundle: Path  # HAProxy's own certificate (LB_CERT)
    node: Issued  # the nodes' certificate, one for both as a deployment may do


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = PrivateCA(tmp_path_factory.mktemp("pki"))
    return Pki(ca, ca.issue("haproxy").bundle, ca.issue("node", hosts=(NODES_NAME, "127.0.0.1")))


def lb_env(pki: Pki, node1: str, node2: str, https_port: int, http_port: int) -> dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/bin",
        "LB_BIND": "127.0.0.1",
        "LB_HTTPS_PORT": str(https_port),
        "LB_HTTP_PORT": str(http_port),
        "LB_CERT": str(pki.bundle),
        "LB_NODE1": node1,
        "LB_NODE2": node2,
        "LB_NODES_CA": str(pki.ca.ca_cert),
        "LB_NODES_NAME": NODES_NAME,
    }


def check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HAPROXY, "-c", "-f", str(CONFIG)], env=env, capture_output=True, text=True, timeout=30
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {DEADLINE_S} s: {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def running_proxy(pki: Pki, nodes: dict[str, Node], log: Path) -> Iterator[Proxy]:
    """HAProxy on free ports in front of `nodes` ("node1", "node2"), once it answers over TLS
    (at least one node UP); its output goes to `log`."""
    https_port, http_port = free_port(), free_port()
    env = lb_env(pki, nodes["node1"].address, nodes["node2"].address, https_port, http_port)
    with log.open("wb") as out:
        # -db: stay in the foreground, so that the test owns the process.
        process = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(CONFIG)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    running = Proxy(
        f"https://127.0.0.1:{https_port}",
        f"http://127.0.0.1:{http_port}",
        https_port,
        pki.ca.ca_cert,
        nodes,
        log,
    )
    try:

        def answers() -> bool:
            if process.poll() is not None:
                pytest.fail(f"haproxy exited: {log.read_text(errors='replace')}")
            try:
                with running.client() as client:
                    return client.get(running.https_url + "/").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answers, "HAProxy answers over TLS")
        yield running
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def proxy(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    nodes = {"node1": Node("node1", pki.node), "node2": Node("node2", pki.node)}
    try:
        with running_proxy(pki, nodes, tmp_path_factory.mktemp("haproxy") / "haproxy.log") as p:
            yield p
    finally:
        for node in nodes.values():
            node.close()


def test_the_configuration_is_valid_with_a_deployments_environment(pki: Pki) -> None:
    env = lb_env(pki, "127.0.0.1:18001", "127.0.0.1:18002", free_port(), free_port())
    done = check_config(env)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("missing", ["LB_NODE2", "LB_NODES_CA", "LB_NODES_NAME"])
def test_the_configuration_needs_its_nodes_and_how_to_verify_them(pki: Pki, missing: str) -> None:
    """The nodes and the CA and name their certificates are checked against come from the
    environment: without one of them the file does not load (it has no default that would
    silently send traffic elsewhere, or trust any certificate)."""
    env = lb_env(pki, "127.0.0.1:18001", "127.0.0.1:18002", free_port(), free_port())
    del env[missing]
    assert check_config(env).returncode != 0


def seen_nodes(proxy: Proxy, count: int) -> list[str]:
    with proxy.client() as client:
        return [client.get(proxy.https_url + "/whoami").json()["node"] for _ in range(count)]


def test_requests_are_spread_over_both_nodes(proxy: Proxy) -> None:
    assert set(seen_nodes(proxy, 8)) == {"node1", "node2"}


def test_forwarded_headers_and_hsts(proxy: Proxy) -> None:
    with proxy.client() as client:
        # A client's own X-Forwarded-For is replaced: it would otherwise choose its rate-limit
        # key.
        answer = client.get(proxy.https_url + "/echo", headers={"X-Forwarded-For": "203.0.113.9"})
    assert answer.status_code == 200
    headers = {k.lower(): v for k, v in answer.json()["headers"].items()}
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "https"
    hsts = answer.headers["strict-transport-security"]
    assert "max-age=63072000" in hsts
    assert "includeSubDomains" in hsts


def handshake(proxy: Proxy, context: ssl.SSLContext) -> str | None:
    """The negotiated protocol version, or None when the proxy refused the handshake."""
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # what is tested is the proxy's choice, not trust
    try:
        with (
            socket.create_connection(("127.0.0.1", proxy.https_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            return tls.version()
    except (ssl.SSLError, ConnectionResetError):
        return None


def client_context(ciphers: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Security level 0: the client is willing to offer old protocols and weak suites, so a
    # failed handshake is the proxy's refusal, not the client's.
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    return context


def test_tls_1_1_is_refused(proxy: Proxy) -> None:
    context = client_context("DEFAULT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/1.1 names are deprecated
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    assert handshake(proxy, context) is None


@pytest.mark.parametrize("weak", ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA"])
def test_weak_tls_1_2_suites_are_refused(proxy: Proxy, weak: str) -> None:
    """No suite without forward secrecy (RSA key exchange), and no CBC."""
    context = client_context(weak)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(proxy, context) is None


def test_tls_1_2_with_a_modern_suite_and_tls_1_3_are_accepted(proxy: Proxy) -> None:
    """The refusals above are about the suites, not TLS 1.2 as such."""
    context = client_context("ECDHE-RSA-AES128-GCM-SHA256")
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(proxy, context) == "TLSv1.2"
    assert handshake(proxy, client_context("DEFAULT")) == "TLSv1.3"


def test_a_node_that_is_not_ready_leaves_the_rotation_and_comes_back(proxy: Proxy) -> None:
    node2 = proxy.nodes["node2"]
    node2.ready = False
    try:
        wait_for(lambda: set(seen_nodes(proxy, 6)) == {"node1"}, "node2 taken out")
    finally:
        node2.ready = True
    wait_for(lambda: "node2" in seen_nodes(proxy, 6), "node2 back in rotation")


def test_plain_http_is_redirected_and_the_proxy_reports_its_health(proxy: Proxy) -> None:
    with httpx.Client(timeout=5) as client:
        redirect = client.get(proxy.http_url + "/authorize?x=1")
        health = client.get(proxy.http_url + "/haproxy-health")
    assert redirect.status_code == 301
    assert redirect.headers["location"].startswith("https://")
    assert health.status_code == 200


def test_only_failed_connections_are_retried() -> None:
    """A request that reached a node is never sent again: a replayed POST could deliver twice.
    (`conn-failure`: no connection could be made, so nothing was sent.)"""
    directives = [line.split() for line in CONFIG.read_text(encoding="utf-8").splitlines()]
    retry_on = [words[1:] for words in directives if words[:1] == ["retry-on"]]
    assert retry_on == [["conn-failure"]]
    assert not any(words[:1] == ["http-request"] and "retry" in words for words in directives)


@pytest.fixture(scope="module")
def rogue_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    """A CA that HAProxy does not trust (not LB_NODES_CA)."""
    return PrivateCA(tmp_path_factory.mktemp("rogue"))


@pytest.mark.parametrize(
    ("flaw", "reason"),
    [
        # The chain does not lead to LB_NODES_CA (`verify required ca-file`).
        ("signed by another CA", "SSL handshake failure"),
        # The chain does, but LB_NODES_NAME is not among the names (`verifyhost`).
        ("issued for another name", "Server presented an SSL certificate different from"),
    ],
)
def test_a_node_whose_certificate_does_not_verify_is_never_sent_traffic(
    pki: Pki, rogue_ca: PrivateCA, flaw: str, reason: str, tmp_path: Path
) -> None:
    """node2 answers `/readyz` with 200 over TLS, yet its certificate fails HAProxy's checks:
    its checks fail at the handshake, so it is DOWN, and every request goes to node1. Not a
    single request (check or traffic) reaches node2: TLS is refused before any is sent."""
    if flaw == "signed by another CA":
        bad = rogue_ca.issue("impostor", hosts=(NODES_NAME, "127.0.0.1"))
    else:
        # The right CA, but not the nodes' name: any other service's certificate from the
        # operator's CA must not pass for a broker node.
        bad = pki.ca.issue("other", hosts=("redis.example.org", "127.0.0.1"))
    nodes = {"node1": Node("node1", pki.node), "node2": Node("node2", bad)}
    try:
        with running_proxy(pki, nodes, tmp_path / "haproxy.log") as proxy:
            wait_for(
                lambda: "sharelock_nodes/node2 is DOWN" in proxy.log.read_text(errors="replace"),
                "node2 marked DOWN",
            )
            assert set(seen_nodes(proxy, 8)) == {"node1"}
            log = proxy.log.read_text(errors="replace")
    finally:
        for node in nodes.values():
            node.close()
    down = next(line for line in log.splitlines() if "sharelock_nodes/node2 is DOWN" in line)
    assert "Layer6" in down and reason in down, down
    assert nodes["node2"].requests == 0
    assert nodes["node1"].requests > 0


def test_with_no_node_it_trusts_haproxy_answers_503(pki: Pki, rogue_ca: PrivateCA) -> None:
    """Both nodes fail verification: HAProxy sends nothing on and answers 503 itself."""
    bad = rogue_ca.issue("impostors", hosts=(NODES_NAME, "127.0.0.1"))
    nodes = {"node1": Node("node1", bad), "node2": Node("node2", bad)}
    https_port, http_port = free_port(), free_port()
    env = lb_env(pki, nodes["node1"].address, nodes["node2"].address, https_port, http_port)
    process = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(CONFIG)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        context = ssl.create_default_context(cafile=str(pki.ca.ca_cert))
        with httpx.Client(verify=context, timeout=10) as client:

            def answers() -> bool:
                try:
                    return client.get(f"https://127.0.0.1:{https_port}/whoami").status_code == 503
                except httpx.TransportError:
                    return False

            wait_for(answers, "HAProxy answers 503")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        for node in nodes.values():
            node.close()
    assert nodes["node1"].requests == nodes["node2"].requests == 0
