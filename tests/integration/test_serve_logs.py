"""`sharelock serve` as an operator runs it: the installed console script in a process of its
own, settings from the environment only (the session's SoftHSM token, Redis and sandbox, a
SQLite database of the test's own), two listeners on free ports.

A whole share goes through it over HTTP, plus the requests a careless partner or a curious
person would send; then the server is stopped and everything it wrote is read back: every line
is a JSON object, access lines carry a request id and a route *template*, and not one of the
share's secrets appears anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sharelock.config import Settings
from sharelock.embedded import free_port
from sharelock.envelope.sealing import pick_encryption_key, seal_for
from sharelock.keys import KeyLayer
from sharelock.logs import json_formatter
from sharelock.web.access_log import request_id_from
from tests.support.redis_server import RedisServer

SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]
REDIRECT_URI = "https://partner.example/callback"
PASSWORD = "alice-pass"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0
REQUEST_ID = re.compile(r"[A-Za-z0-9-]{8,64}")


@dataclass
class ServeProcess:
    """A running `sharelock serve`; `stop()` ends it and returns everything it wrote."""

    process: subprocess.Popen[bytes]
    url: str
    operator_url: str
    env: dict[str, str]
    stdout: Path
    stderr: Path

    def stop(self) -> tuple[int, str, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        return (
            self.process.returncode,
            self.stdout.read_text(encoding="utf-8", errors="replace"),
            self.stderr.read_text(encoding="utf-8", errors="replace"),
        )


@pytest.fixture
def serve_env(
    settings: Settings,
    key_layer: KeyLayer,  # the session's token, with its keys
    redis_server: RedisServer,
    sandbox_url: str,
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
        "SHARELOCK_ISSUER": f"http://127.0.0.1:{port}",
        "SHARELOCK_OPERATOR_HOST": "127.0.0.1",
        "SHARELOCK_OPERATOR_PORT": str(operator_port),
        "SHARELOCK_CONNECTOR_TIMEOUT": "5",
        "COLUMNS": "200",
    }


@pytest.fixture
def start_serve(serve_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Start `sharelock serve` and wait until its operator listener says it is ready."""
    started: list[ServeProcess] = []

    def start(*args: str, **extra_env: str) -> ServeProcess:
        env = serve_env | extra_env
        stdout, stderr = tmp_path / "serve.out", tmp_path / "serve.err"
        # Output to files, not pipes: a pipe nobody reads while the server runs would fill up
        # and block it.
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [str(SHARELOCK), "serve", *args], cwd=ROOT, env=env, stdout=out, stderr=err
            )
        served = ServeProcess(
            process,
            f"http://127.0.0.1:{env['SHARELOCK_PORT']}",
            f"http://127.0.0.1:{env['SHARELOCK_OPERATOR_PORT']}",
            env,
            stdout,
            stderr,
        )
        started.append(served)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                _, out_text, err_text = served.stop()
                pytest.fail(f"serve exited with {process.returncode}:\n{out_text}\n{err_text}")
            try:
                if httpx.get(served.operator_url + "/readyz", timeout=5).status_code == 200:
                    return served
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                served.stop()
                pytest.fail(f"serve was not ready in {READY_TIMEOUT_S} s")
            time.sleep(0.2)

    yield start
    for served in started:
        served.stop()


def add_partner(env: dict[str, str]) -> tuple[str, str]:
    """Register a partner with the CLI, as an operator does; its client id and secret."""
    done = subprocess.run(
        [
            str(SHARELOCK),
            "partners",
            "add",
            "--name",
            "Log Test Shop",
            "--redirect-uri",
            REDIRECT_URI,
            "--scope",
            "identity address bank_account",
            "--purpose",
            "log tests",
            "--profile",
            "basic",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    added = json.loads(done.stdout)
    return added["client_id"], added["client_secret"]


@dataclass
class Secrets:
    """Every secret value a share handled, to look for in the log."""

    values: dict[str, str]
    good_request_id: str


def drive_share(url: str, client_id: str, client_secret: str) -> Secrets:
    """A whole share over HTTP (PAR, authorize, sealed credentials, decision, token, data),
    then the requests that put secrets in URLs."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    state = secrets.token_urlsafe(16)
    canary = "qs" + secrets.token_hex(12)
    good_request_id = "partner-" + secrets.token_hex(8)
    with (
        httpx.Client(base_url=url, auth=(client_id, client_secret), timeout=60) as partner,
        httpx.Client(base_url=url, timeout=60, follow_redirects=False) as browser,
        httpx.Client(base_url=url, timeout=60) as anyone,
    ):
        pushed = partner.post(
            "/par",
            data={
                "response_type": "code",
                "redirect_uri": REDIRECT_URI,
                "scope": "identity address bank_account",
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        )
        assert pushed.status_code == 201, pushed.text
        request_uri = pushed.json()["request_uri"]

        started = browser.get(
            "/authorize", params={"client_id": client_id, "request_uri": request_uri}
        )
        assert started.status_code == 303, started.text
        location = started.headers["location"]
        assert location.startswith("/consent/")
        flow_id = location.rsplit("/", 1)[-1]
        session = "".join(started.cookies.values())  # the flow's cookie, cleared at its end
        assert browser.get(location).status_code == 200

        jwk = pick_encryption_key(browser.get("/.well-known/jwks.json").json())
        sealed = seal_for(jwk, {"login": "alice", "password": PASSWORD})
        collected = browser.post(
            f"/api/flows/{flow_id}/credentials",
            json={"data_source": "sandbox-bank", "credentials": sealed},
        )
        assert collected.status_code == 200, collected.text
        assert collected.json()["status"] == "collected"

        decided = browser.post(f"/api/flows/{flow_id}/decision", json={"approve": True, "omit": []})
        assert decided.status_code == 200, decided.text
        left = browser.get(decided.json()["redirect_to"])  # Continue: the code is issued now
        assert left.status_code == 303, left.text
        code = parse_qs(urlsplit(left.headers["location"]).query)["code"][0]

        exchanged = partner.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        token = exchanged.json()["access_token"]

        shared = anyone.get(
            "/v1/share",
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": good_request_id},
        )
        assert shared.status_code == 200, shared.text
        assert shared.headers["x-request-id"] == good_request_id
        iban = shared.json()["data"]["bank_account"]["iban"]

        # What the log must not keep: a token in a query string, ids in paths, odd headers.
        assert anyone.get("/v1/share", params={"access_token": token}).status_code == 400
        browser.get(f"/consent/{flow_id}", params={"x": canary})
        assert anyone.get(f"/no-such-page/{canary}").status_code == 404
        odd = anyone.get("/healthz", headers={"X-Request-Id": f"{canary} <script>"})
        assert odd.headers["x-request-id"] != f"{canary} <script>"
        assert REQUEST_ID.fullmatch(odd.headers["x-request-id"])
        assert anyone.get("/metrics").status_code == 404
    return Secrets(
        {
            "access token": token,
            "authorization code": code,
            "flow id": flow_id,
            "client secret": client_secret,
            "request_uri": request_uri,
            "request_uri handle": request_uri.rsplit(":", 1)[-1],
            "PKCE verifier": verifier,
            "PKCE challenge": challenge,
            "state": state,
            "password": PASSWORD,
            "query string canary": canary,
            "session cookie": session,
            "IBAN": iban,
        },
        good_request_id,
    )


def test_serve_logs_json_lines_without_a_secret(
    start_serve: Any, serve_env: dict[str, str]
) -> None:
    client_id, client_secret = add_partner(serve_env)
    # Two workers: each is a spawned process that must set up the same JSON logging; debug
    # level, so that whatever a library says at its most talkative is checked too.
    served = start_serve("--workers", "2", SHARELOCK_LOG_LEVEL="debug")
    found = drive_share(served.url, client_id, client_secret)
    # Whichever worker answers the scrape, it adds up every worker's values (multiprocess
    # mode): the one delivery and the one pushed request are there, once.
    scraped = httpx.get(served.operator_url + "/metrics", timeout=30).text
    assert 'sharelock_deliveries_total{data_source="sandbox-bank"} 1.0' in scraped
    assert 'sharelock_collections_total{data_source="sandbox-bank",outcome="collected"} 1.0' in (
        scraped
    )
    assert 'sharelock_http_requests_total{method="POST",route="/par",status="201"} 1.0' in scraped
    returncode, stdout, stderr = served.stop()
    assert returncode == 0, stderr[-2000:]

    written = stdout + stderr
    for name, value in found.values.items():
        assert value, name
        assert value not in written, f"the {name} is in the server's output"
    # Nor what the data source answered: its session cookie is the person's session there
    # (httpcore logs every response header at debug level, unless told not to).
    assert "set-cookie" not in written.lower()
    assert "bank_sid" not in written

    lines = [line for line in written.splitlines() if line.strip()]
    records = []
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert isinstance(record, dict), line
        assert {"timestamp", "level", "logger", "event"} <= set(record), line
        assert record["timestamp"].endswith("Z"), line
        records.append(record)

    access = [r for r in records if r["logger"] == "sharelock.access"]
    assert access, "no access line"
    for record in access:
        assert set(record) == {
            "timestamp",
            "level",
            "logger",
            "event",
            "request_id",
            "method",
            "route",
            "status",
            "duration_ms",
        }, record
        assert REQUEST_ID.fullmatch(record["request_id"]), record
        assert "?" not in record["route"], record
        assert record["route"] == "unmatched" or record["route"].startswith("/"), record
    routes = {r["route"] for r in access}
    assert {
        "/par",
        "/authorize",
        "/consent/{flow_id}",
        "/api/flows/{flow_id}/credentials",
        "/api/flows/{flow_id}/decision",
        "/token",
        "/v1/share",
        "/readyz",
        "unmatched",
    } <= routes
    assert "uvicorn.access" not in {r["logger"] for r in records}

    # The partner's own request id is kept, on the access line of that request.
    mine = [r for r in access if r["request_id"] == found.good_request_id]
    assert [(r["route"], r["status"]) for r in mine] == [("/v1/share", 200)]
    # A log line written while a request is handled carries that request's id: the
    # connector's report of the collection is logged inside the credentials request.
    (credentials,) = [r for r in access if r["route"] == "/api/flows/{flow_id}/credentials"]
    collection = [r for r in records if r["logger"] == "sharelock.connectors.portal"]
    assert collection
    assert {r.get("request_id") for r in collection} == {credentials["request_id"]}


def test_metrics_only_on_the_operator_listener(start_serve: Any) -> None:
    served = start_serve()  # one worker: uvicorn's single-process path
    public = httpx.get(served.url + "/metrics", timeout=30)
    assert public.status_code == 404
    assert public.json()["error"] == "not_found"

    operator = httpx.get(served.operator_url + "/metrics", timeout=30)
    assert operator.status_code == 200
    assert operator.headers["content-type"].startswith("text/plain")
    assert "# TYPE sharelock_http_requests_total counter" in operator.text
    # The public listener's requests are what is counted (per process, see operations.md).
    assert 'route="unmatched",status="404"' in operator.text

    for base in (served.url, served.operator_url):
        assert httpx.get(base + "/healthz", timeout=30).status_code == 200
        assert httpx.get(base + "/readyz", timeout=30).status_code == 200
    # Nothing but metrics and probes on the operator listener.
    assert httpx.get(served.operator_url + "/.well-known/jwks.json", timeout=30).status_code == 404
    returncode, _, stderr = served.stop()
    # One worker: uvicorn shuts down gracefully, then re-raises the SIGTERM it caught.
    assert returncode in (0, -signal.SIGTERM), stderr[-2000:]
    assert "Application shutdown complete." in stderr


def test_exceptions_are_logged_without_their_message() -> None:
    """An exception's message can quote the value being handled: the log keeps its type and
    where it went, not what it said."""
    canary = "tok_" + secrets.token_hex(12)
    try:
        {}[canary]  # the KeyError's message is the missing key
    except KeyError:
        record = logging.LogRecord(
            "sharelock.test", logging.ERROR, __file__, 1, "failed: %s", ("why",), sys.exc_info()
        )
    line = json_formatter().format(record)
    parsed = json.loads(line)
    assert canary not in line
    assert parsed["event"] == "failed: why"
    assert parsed["exc_type"] == "builtins.KeyError"
    assert any("test_exceptions_are_logged_without_their_message" in f for f in parsed["stack"])


def test_a_request_id_is_taken_from_the_caller_only_when_plain() -> None:
    assert request_id_from([(b"x-request-id", b"abcd-1234-EFGH")]) == "abcd-1234-EFGH"
    for refused in (b"short", b"a" * 65, b"has space 12345", b"semi;colon1234", b"tok_under_123"):
        generated = request_id_from([(b"x-request-id", refused)])
        assert generated != refused.decode()
        assert REQUEST_ID.fullmatch(generated)
    assert REQUEST_ID.fullmatch(request_id_from([]))
