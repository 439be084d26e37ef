"""`sharelock serve` over HTTPS (SHARELOCK_TLS_CERT_FILE, SHARELOCK_TLS_KEY_FILE), run as an
operator runs it: the installed console script, settings from the environment only (the
session's SoftHSM token, Redis and sandbox), a certificate from the test CA. A client that
trusts only that CA reads the metadata, whose issuer is the https URL; old protocols and weak
suites are refused; a half-configured TLS is refused naming both variables, and a key that is
not the certificate's stops `serve` with one line.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sharelock.config import Settings
from sharelock.embedded import free_port
from sharelock.errors import ConfigError
from sharelock.keys import KeyLayer
from tests.support.pki import Issued, PrivateCA
from tests.support.redis_server import RedisServer

SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return PrivateCA(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def issued(ca: PrivateCA) -> Issued:
    """The server's certificate, made once: an RSA-4096 key takes about a second."""
    return ca.issue("serve")


@pytest.fixture
def tls_env(
    settings: Settings,
    key_layer: KeyLayer,  # the session's token, with its keys
    redis_server: RedisServer,
    sandbox_url: str,
    issued: Issued,
    tmp_path: Path,
) -> dict[str, str]:
    port, operator_port = free_port(), free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    return base | {
        "SHARELOCK_STATE_DIR": str(settings.state_dir),
        "SHARELOCK_HSM_TOKEN_LABEL": settings.hsm_token_label,
        "SHARELOCK_DATABASE_URL": f"sqlite:///{tmp_path / 'sharelock.db'}",
        "SHARELOCK_REDIS_URL": redis_server.url,
        "SHARELOCK_SANDBOX_URL": sandbox_url,
        "SHARELOCK_HOST": "127.0.0.1",
        "SHARELOCK_PORT": str(port),
        "SHARELOCK_ISSUER": f"https://127.0.0.1:{port}",
        "SHARELOCK_OPERATOR_HOST": "127.0.0.1",
        "SHARELOCK_OPERATOR_PORT": str(operator_port),
        "SHARELOCK_TLS_CERT_FILE": str(issued.cert),
        "SHARELOCK_TLS_KEY_FILE": str(issued.key),
        "COLUMNS": "200",
    }


@pytest.fixture
def https_serve(tls_env: dict[str, str], ca: PrivateCA, tmp_path: Path) -> Iterator[str]:
    """`sharelock serve` with TLS, ready; yields the API's https URL."""
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        # A file, not a pipe: a pipe nobody reads would fill up and block the server.
        process = subprocess.Popen(
            [str(SHARELOCK), "serve"], cwd=ROOT, env=tls_env, stdout=out, stderr=subprocess.STDOUT
        )
    trust = ssl.create_default_context(cafile=str(ca.ca_cert))
    # The operator listener shares the server's TLS setting (uvicorn has one per server).
    ready_url = f"https://127.0.0.1:{tls_env['SHARELOCK_OPERATOR_PORT']}/readyz"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(ready_url, verify=trust, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve was not ready in {READY_TIMEOUT_S} s:\n{log.read_text()}")
            time.sleep(0.2)
        yield f"https://127.0.0.1:{tls_env['SHARELOCK_PORT']}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


def handshake(url: str, context: ssl.SSLContext) -> str | None:
    """The protocol version negotiated with the server at `url`, or None if it refused."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # what is tested is the server's choice, not trust
    try:
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            return tls.version()
    except (ssl.SSLError, ConnectionResetError):
        return None


def willing_client(ciphers: str) -> ssl.SSLContext:
    """A client that offers what it is told to, weak or old (security level 0), so that a
    refusal is the server's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    return context


def test_serve_answers_https_verified_against_the_ca(https_serve: str, ca: PrivateCA) -> None:
    trust = ssl.create_default_context(cafile=str(ca.ca_cert))
    with httpx.Client(verify=trust, timeout=10) as client:
        health = client.get(https_serve + "/healthz")
        metadata = client.get(https_serve + "/.well-known/oauth-authorization-server")
    assert health.status_code == 200
    assert metadata.status_code == 200
    assert metadata.json()["issuer"] == https_serve
    assert metadata.json()["token_endpoint"].startswith(https_serve + "/")

    # Plain HTTP on the same port is not served.
    with pytest.raises(httpx.TransportError):
        httpx.get(https_serve.replace("https://", "http://") + "/healthz", timeout=5)

    # Old protocols and suites without forward secrecy are refused; TLS 1.2 with a modern suite
    # and TLS 1.3 are accepted.
    old = willing_client("DEFAULT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/1.1 names are deprecated
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    assert handshake(https_serve, old) is None
    weak = willing_client("AES128-SHA:AES256-GCM-SHA384")
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(https_serve, weak) is None
    modern = willing_client("ECDHE-RSA-AES128-GCM-SHA256")
    modern.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(https_serve, modern) == "TLSv1.2"
    assert handshake(https_serve, willing_client("DEFAULT")) == "TLSv1.3"


@pytest.mark.parametrize("given", ["tls_cert_file", "tls_key_file"])
def test_a_certificate_without_its_key_is_refused(given: str, tmp_path: Path) -> None:
    """Both or neither; the message names both variables (and no file content)."""
    with pytest.raises(ConfigError) as refused:
        Settings(issuer="https://broker.example", **{given: tmp_path / "file.pem"})
    assert "SHARELOCK_TLS_CERT_FILE" in str(refused.value)
    assert "SHARELOCK_TLS_KEY_FILE" in str(refused.value)


def test_tls_needs_an_https_issuer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SHARELOCK_ISSUER"):
        Settings(
            issuer="http://broker.example",
            tls_cert_file=tmp_path / "cert.pem",
            tls_key_file=tmp_path / "key.pem",
        )


def test_a_key_that_is_not_the_certificates_stops_serve(
    tls_env: dict[str, str], ca: PrivateCA
) -> None:
    # The CA's certificate with the server's key: both valid PEM, not a pair.
    env = tls_env | {"SHARELOCK_TLS_CERT_FILE": str(ca.ca_cert)}
    done = subprocess.run(
        [str(SHARELOCK), "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    # One line naming the variables, exit 2 (a configuration error), before any worker starts.
    assert done.returncode == 2
    output = done.stderr + done.stdout
    assert "SHARELOCK_TLS_KEY_FILE" in output
    assert "Traceback" not in output
