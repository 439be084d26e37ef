"""The connectors against the sandbox portals, over real HTTP on loopback: every path a real
portal can take (straight in, one-time code, locked, wrong password, slow, down, broken,
off-origin redirect) ends in the right typed outcome, and nothing personal reaches a log.
Collections share their connector's connection pool but never a cookie."""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from sharelock.config import Settings
from sharelock.connectors import (
    DATA_SOURCES,
    Connector,
    Outcome,
    PortalConnector,
    build_connectors,
)
from sharelock.connectors.sources import BANK
from sharelock.scopes import DOCUMENT_SCOPES
from tests.support.sandbox import serve_sandbox, source_mode
from tests.support.server import serve_app

# What each source's straight-in user gives, as the broker hands it on (canonical forms).
EXPECTED: dict[str, tuple[str, str, dict[str, dict[str, str]]]] = {
    "sandbox-bank": (
        "alice",
        "alice-pass",
        {
            "identity": {
                "family_name": "Martin",
                "given_name": "Alice",
                "gender": "female",
                "birthdate": "1985-03-14",
                "birthplace": "Lyon",
            },
            "address": {
                "street": "12 rue de la République",
                "postal_code": "69002",
                "city": "Lyon",
                "country": "FR",
            },
            "bank_account": {
                "account_holder": "ALICE MARTIN",
                "iban": "FR7699990000010001234567834",
                "bic": "SBOXFRPP",
            },
        },
    ),
    "sandbox-telecom": (
        "carol",
        "carol-pass",
        {
            "identity": {
                "family_name": "Petit",
                "given_name": "Caroline",
                "gender": "female",
                "birthdate": "1990-07-21",
                "birthplace": "Nantes",
            },
            "address": {
                "street": "5 place Royale",
                "postal_code": "44000",
                "city": "Nantes",
                "country": "FR",
            },
            "phone": {"phone_number": "+33612345678"},
            "email": {"email": "caroline.petit@example.fr"},
        },
    ),
    "sandbox-energy": (
        "erin",
        "erin-pass",
        {
            "address": {
                "street": "3 allée des Tilleuls",
                "postal_code": "33000",
                "city": "Bordeaux",
                "country": "FR",
            },
            "email": {"email": "emilie.girard@example.fr"},
        },
    ),
    "sandbox-tax": (
        "1234567890123",
        "tax-pass",
        {
            "identity": {
                "family_name": "MOREAU",
                "given_name": "Hélène",
                "gender": "female",
                "birthdate": "1958-09-09",
                "birthplace": "Toulouse",
            },
            "tax_notice": {
                "tax_year": "2025",
                "reference_income": "38512",
                "household_shares": "2.5",
                "notice_reference": "2631A01234567",
            },
        },
    ),
}
OTP_USERS = {
    "sandbox-bank": ("bob", "bob-pass", "Dubois"),
    "sandbox-telecom": ("dave", "dave-pass", "Leroy"),
    "sandbox-energy": ("frank", "frank-pass", None),
    "sandbox-tax": ("2345678901234", "tax-otp-pass", "FOURNIER"),
}
FAILING = {  # locked, slow, broken, down logins per source; passwords are "<role>-pass"
    "sandbox-bank": ("locked", "slow", "broken", "down"),
    "sandbox-telecom": ("locked", "slow", "broken", "down"),
    "sandbox-energy": ("locked", "slow", "broken", "down"),
    "sandbox-tax": ("3456789012345", "5555555555555", "6666666666666", "7777777777777"),
}
SOURCE_IDS = sorted(EXPECTED)


def data_scopes(connector: Connector) -> tuple[str, ...]:
    """The scopes read from data pages (documents: tests/integration/test_documents_share.py)."""
    return tuple(scope for scope in connector.info.scopes if scope not in DOCUMENT_SCOPES)


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_sandbox(slow_seconds=3.0) as url:
        yield url


async def _close_all(connectors: dict[str, Connector]) -> None:
    for connector in connectors.values():
        await connector.aclose()


@pytest.fixture(scope="module")
async def connectors(sandbox_url: str) -> AsyncIterator[dict[str, Connector]]:
    built = build_connectors(Settings(connector_timeout=5.0), base_url=sandbox_url)
    yield built
    await _close_all(built)


@pytest.fixture(scope="module")
async def impatient(sandbox_url: str) -> AsyncIterator[dict[str, Connector]]:
    """Connectors that give up after half a second, for the slow paths."""
    built = build_connectors(Settings(connector_timeout=0.5), base_url=sandbox_url)
    yield built
    await _close_all(built)


def test_registry_matches_the_sandbox(connectors: dict[str, Connector]) -> None:
    assert sorted(connectors) == SOURCE_IDS
    assert {info.id: info.scopes for info in DATA_SOURCES} == {
        "sandbox-bank": (
            "identity",
            "address",
            "bank_account",
            "bank_details_document",
            "bank_statement_document",
        ),
        "sandbox-telecom": ("identity", "address", "phone", "email"),
        "sandbox-energy": ("address", "email", "proof_of_address"),
        "sandbox-tax": ("identity", "tax_notice", "tax_notice_document"),
    }
    for source_id, connector in connectors.items():
        assert isinstance(connector, Connector)
        assert connector.info.id == source_id


@pytest.mark.parametrize("source_id", SOURCE_IDS)
async def test_straight_in_user_gives_every_scope(
    connectors: dict[str, Connector], source_id: str
) -> None:
    login, password, expected = EXPECTED[source_id]
    connector = connectors[source_id]
    result = await connector.login(login, password, connector.info.scopes)
    assert result.outcome is Outcome.COLLECTED
    assert set(result.data) == set(connector.info.scopes)
    assert {scope: result.data[scope] for scope in data_scopes(connector)} == expected
    assert result.resume_state is None


@pytest.mark.parametrize("source_id", SOURCE_IDS)
async def test_only_requested_scopes_are_returned(
    connectors: dict[str, Connector], source_id: str
) -> None:
    login, password, expected = EXPECTED[source_id]
    connector = connectors[source_id]
    scope = data_scopes(connector)[-1]
    result = await connector.login(login, password, (scope,))
    assert result.outcome is Outcome.COLLECTED
    assert result.data == {scope: expected[scope]}


async def test_unsupported_scope_is_a_caller_error(connectors: dict[str, Connector]) -> None:
    with pytest.raises(ValueError, match="provides only"):
        await connectors["sandbox-energy"].login("erin", "erin-pass", ("bank_account",))


@pytest.mark.parametrize("source_id", SOURCE_IDS)
async def test_one_time_code_right_after_wrong(
    connectors: dict[str, Connector], source_id: str
) -> None:
    login, password, family_name = OTP_USERS[source_id]
    connector = connectors[source_id]
    scopes = connector.info.scopes
    first = await connector.login(login, password, scopes)
    assert first.outcome is Outcome.OTP_REQUIRED
    assert first.data == {}
    assert first.resume_state is not None
    state = json.loads(first.resume_state)
    assert set(state) == {"v", "source", "cookies", "action", "hidden"}
    assert "csrf_token" in state["hidden"]
    assert password not in first.resume_state.decode()

    wrong = await connector.submit_otp(first.resume_state, "000000", scopes)
    assert wrong.outcome is Outcome.INVALID_OTP
    assert wrong.data == {}
    assert wrong.resume_state is not None  # the portal lets the user try again

    right = await connector.submit_otp(wrong.resume_state, "123 456", scopes)
    assert right.outcome is Outcome.COLLECTED
    if family_name is not None:
        assert right.data["identity"]["family_name"] == family_name
    assert set(right.data) == set(scopes)


async def test_three_wrong_codes_end_the_login(connectors: dict[str, Connector]) -> None:
    connector = connectors["sandbox-bank"]
    result = await connector.login("bob", "bob-pass", ("identity",))
    for _ in range(3):
        assert result.resume_state is not None
        result = await connector.submit_otp(result.resume_state, "999999", ("identity",))
        assert result.outcome is Outcome.INVALID_OTP
    assert result.resume_state is None


async def test_resume_state_of_another_source_is_refused(connectors: dict[str, Connector]) -> None:
    first = await connectors["sandbox-bank"].login("bob", "bob-pass", ("identity",))
    assert first.resume_state is not None
    with pytest.raises(ValueError, match="resume state"):
        await connectors["sandbox-telecom"].submit_otp(first.resume_state, "123456", ("phone",))
    with pytest.raises(ValueError, match="resume state"):
        await connectors["sandbox-bank"].submit_otp(b"{not json", "123456", ("identity",))


@pytest.mark.parametrize("source_id", SOURCE_IDS)
async def test_locked_and_wrong_password(connectors: dict[str, Connector], source_id: str) -> None:
    connector = connectors[source_id]
    locked = FAILING[source_id][0]
    result = await connector.login(locked, "locked-pass", connector.info.scopes)
    assert result.outcome is Outcome.ACCOUNT_LOCKED
    assert result.data == {}
    login, _, _ = EXPECTED[source_id]
    result = await connector.login(login, "not-the-password", connector.info.scopes)
    assert result.outcome is Outcome.INVALID_CREDENTIALS
    result = await connector.login(login + "0", "whatever", connector.info.scopes)
    assert result.outcome is Outcome.INVALID_CREDENTIALS


async def test_tax_login_must_be_13_digits(
    connectors: dict[str, Connector], sandbox_url: str
) -> None:
    connector = connectors["sandbox-tax"]
    assert connector.info.login_pattern == r"[0-9]{13}"
    for bad in ("123456789012", "12345678901234", "abcdefghijklm", ""):
        result = await connector.login(bad, "tax-pass", ("identity",))
        assert result.outcome is Outcome.INVALID_CREDENTIALS
    spaced = await connector.login("1234 5678 90123", "tax-pass", ("tax_notice",))
    assert spaced.outcome is Outcome.COLLECTED
    # The portal itself refuses a malformed tax number too.
    with httpx.Client(base_url=sandbox_url) as client:
        token = _csrf(client.get("/tax/login").text)
        answer = client.post(
            "/tax/login", data={"csrf_token": token, "spi": "12345", "password": "tax-pass"}
        )
    assert answer.status_code == 200
    assert 'data-error="invalid_login"' in answer.text


@pytest.mark.parametrize("source_id", SOURCE_IDS)
async def test_slow_user_times_out_quickly(impatient: dict[str, Connector], source_id: str) -> None:
    connector = impatient[source_id]
    started = time.monotonic()
    result = await connector.login(FAILING[source_id][1], "slow-pass", connector.info.scopes)
    assert result.outcome is Outcome.SOURCE_TIMEOUT
    assert time.monotonic() - started < 2.0


async def test_slow_user_is_served_when_waited_for(sandbox_url: str) -> None:
    connector = build_connectors(Settings(connector_timeout=6.0), base_url=sandbox_url)
    result = await connector["sandbox-energy"].login("slow", "slow-pass", ("address",))
    await _close_all(connector)
    assert result.outcome is Outcome.COLLECTED
    assert result.data["address"]["postal_code"] == "97400"


@pytest.mark.parametrize("source_id", SOURCE_IDS)
async def test_broken_data_is_refused_whole(
    connectors: dict[str, Connector], source_id: str
) -> None:
    connector = connectors[source_id]
    broken = FAILING[source_id][2]
    for scope in connector.info.scopes:
        result = await connector.login(broken, "broken-pass", (scope,))
        # The broken person's documents are cut short (docs/sandbox.md).
        refused = Outcome.DOCUMENT_REFUSED if scope in DOCUMENT_SCOPES else Outcome.INVALID_DATA
        assert result.outcome is refused, scope
        assert result.data == {}


@pytest.mark.parametrize("source_id", SOURCE_IDS)
async def test_down_user_is_unavailable(connectors: dict[str, Connector], source_id: str) -> None:
    connector = connectors[source_id]
    result = await connector.login(FAILING[source_id][3], "down-pass", connector.info.scopes)
    assert result.outcome is Outcome.SOURCE_UNAVAILABLE
    assert result.data == {}


async def test_control_endpoint_modes(
    connectors: dict[str, Connector], impatient: dict[str, Connector], sandbox_url: str
) -> None:
    telecom = connectors["sandbox-telecom"]
    with source_mode(sandbox_url, "sandbox-telecom", "down"):
        result = await telecom.login("carol", "carol-pass", ("phone",))
        assert result.outcome is Outcome.SOURCE_UNAVAILABLE
        # the other sources are not affected
        other = await connectors["sandbox-energy"].login("erin", "erin-pass", ("address",))
        assert other.outcome is Outcome.COLLECTED
    with source_mode(sandbox_url, "telecom", "slow"):
        result = await impatient["sandbox-telecom"].login("carol", "carol-pass", ("phone",))
        assert result.outcome is Outcome.SOURCE_TIMEOUT
    with source_mode(sandbox_url, "sandbox-telecom", "garbage"):
        result = await telecom.login("carol", "carol-pass", ("phone",))
        assert result.outcome is Outcome.SOURCE_UNAVAILABLE
    result = await telecom.login("carol", "carol-pass", ("phone",))
    assert result.outcome is Outcome.COLLECTED

    status = httpx.get(f"{sandbox_url}/_control").json()
    assert status == {"sources": {info.id: "up" for info in DATA_SOURCES}}
    bad = httpx.post(f"{sandbox_url}/_control/sandbox-bank", json={"mode": "sideways"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_request"
    assert httpx.post(f"{sandbox_url}/_control/nope", json={"mode": "up"}).status_code == 404


async def test_nothing_listens_is_unavailable() -> None:
    with serve_sandbox() as url:
        pass  # the port is free again once the server stopped
    connector = PortalConnector(BANK, url, 1.0)
    result = await connector.login("alice", "alice-pass", ("identity",))
    await connector.aclose()
    assert result.outcome is Outcome.SOURCE_UNAVAILABLE


def _redirector(target: str) -> FastAPI:
    """A "portal" whose login page sends the browser elsewhere."""
    app = FastAPI()

    @app.get("/bank/login")
    async def login() -> RedirectResponse:
        return RedirectResponse(target, status_code=302)

    return app


@pytest.mark.parametrize("where", ["other-host", "other-port", "other-scheme"])
async def test_redirect_off_origin_is_refused(sandbox_url: str, where: str) -> None:
    port = int(sandbox_url.rsplit(":", 1)[1])
    targets = {
        "other-host": f"http://localhost:{port}/bank/login",
        "other-port": f"{sandbox_url}/bank/login",
        "other-scheme": "https://127.0.0.1/bank/login",
    }
    with serve_app(lambda _url: _redirector(targets[where])) as evil:
        connector = PortalConnector(BANK, evil.url, 2.0)
        result = await connector.login("alice", "alice-pass", ("identity",))
        await connector.aclose()
    assert result.outcome is Outcome.SOURCE_UNAVAILABLE


def test_portal_requires_csrf(sandbox_url: str) -> None:
    form = {"username": "alice", "password": "alice-pass"}
    with httpx.Client(base_url=sandbox_url) as client:
        missing = client.post("/bank/login", data=form)
        assert missing.status_code == 400
        assert 'data-error="csrf"' in missing.text
        page = client.get("/bank/login")
        assert "HttpOnly" in page.headers["set-cookie"]
        assert page.headers["x-frame-options"] == "DENY"
        token = _csrf(page.text)
        wrong = client.post("/bank/login", data={**form, "csrf_token": token[:-2] + "xx"})
        assert wrong.status_code == 400
        assert "bank_sid" not in client.cookies
        right = client.post("/bank/login", data={**form, "csrf_token": token})
        assert right.status_code == 303
        assert right.headers["location"] == "/bank/profile"
        assert "HttpOnly" in right.headers["set-cookie"]
    with httpx.Client(base_url=sandbox_url) as stranger:  # a token without its cookie
        assert stranger.post("/bank/login", data={**form, "csrf_token": token}).status_code == 400


def test_portal_messages(sandbox_url: str) -> None:
    """The texts a human sees on the bank portal, as SPEC names them."""
    with httpx.Client(base_url=sandbox_url) as client:

        def submit(login: str, password: str) -> httpx.Response:
            token = _csrf(client.get("/bank/login").text)
            form = {"csrf_token": token, "username": login, "password": password}
            return client.post("/bank/login", data=form)

        assert "Invalid credentials" in submit("alice", "wrong").text
        assert "Account locked" in submit("locked", "locked-pass").text
        assert submit("down", "down-pass").status_code == 503
        otp = submit("bob", "bob-pass")
        assert otp.status_code == 303 and otp.headers["location"] == "/bank/otp"
        page = client.get("/bank/otp")
        answer = client.post("/bank/otp", data={"csrf_token": _csrf(page.text), "code": "1"})
        assert "Invalid code" in answer.text
        assert client.get("/bank/accounts").status_code == 303  # not logged in


async def test_logs_hold_no_secret_or_personal_value(
    connectors: dict[str, Connector], all_logs: pytest.LogCaptureFixture
) -> None:
    planted = "Planted-Pa55word-7f3c"
    bank = connectors["sandbox-bank"]
    assert (await bank.login("alice", planted, ("identity",))).outcome is (
        Outcome.INVALID_CREDENTIALS
    )
    collected = await bank.login("alice", "alice-pass", bank.info.scopes)
    otp = await bank.login("bob", "bob-pass", ("bank_account",))
    assert otp.resume_state is not None
    await bank.submit_otp(otp.resume_state, "654321", ("bank_account",))
    text = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in all_logs.records
    )
    assert "collection source=sandbox-bank" in text
    for secret in (planted, "alice-pass", "bob-pass", "654321", "alice", "FR76", "Martin"):
        assert secret not in text
    assert "Martin" not in repr(collected)


# -- one pool per data source, one cookie jar per attempt ------------------------------------

# Which attempt a request belongs to: set by each concurrent task, seen by the transport, which
# runs in the task that sends the request.
_ATTEMPT: contextvars.ContextVar[str] = contextvars.ContextVar("attempt", default="?")


class CountingTransport(httpx.AsyncBaseTransport):
    """A real `httpx.AsyncHTTPTransport` (real HTTP to the real sandbox), counting what goes
    through it: requests, TCP connections opened (from httpcore's trace events), closes, and
    per attempt the cookies sent and the cookies set by the portal."""

    def __init__(self, delay: float = 0.0) -> None:
        self.inner = httpx.AsyncHTTPTransport(trust_env=False)
        self.delay = delay  # before each request, so that concurrent attempts interleave
        self.requests = 0
        self.connections = 0
        self.closes = 0
        self.order: list[str] = []
        self.sent: dict[str, set[str]] = {}
        self.set: dict[str, set[str]] = {}

    async def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self.connections += 1

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempt = _ATTEMPT.get()
        self.requests += 1
        self.order.append(attempt)
        for pair in request.headers.get("cookie", "").split(";"):
            if pair.strip():
                self.sent.setdefault(attempt, set()).add(pair.strip())
        if self.delay:
            await asyncio.sleep(self.delay)
        request.extensions["trace"] = self._trace
        response = await self.inner.handle_async_request(request)
        for header in response.headers.get_list("set-cookie"):
            pair = header.split(";", 1)[0].strip()
            if pair.split("=", 1)[1] not in ("", '""'):  # not a deletion
                self.set.setdefault(attempt, set()).add(pair)
        return response

    async def aclose(self) -> None:
        self.closes += 1
        await self.inner.aclose()


class _Created:
    """Counts the `httpx.AsyncHTTPTransport`s and SSL contexts built while it watches."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.transports = 0
        self.ssl_contexts = 0
        init = httpx.AsyncHTTPTransport.__init__
        make_context = httpx._transports.default.create_ssl_context  # what transports call

        def counting_init(transport: httpx.AsyncHTTPTransport, *a: Any, **kw: Any) -> None:
            self.transports += 1
            init(transport, *a, **kw)

        def counting_context(*a: Any, **kw: Any) -> Any:
            self.ssl_contexts += 1
            return make_context(*a, **kw)

        monkeypatch.setattr(httpx.AsyncHTTPTransport, "__init__", counting_init)
        monkeypatch.setattr(httpx._transports.default, "create_ssl_context", counting_context)


async def test_collections_share_the_injected_transport(
    sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = CountingTransport()
    built = build_connectors(
        Settings(connector_timeout=5.0), base_url=sandbox_url, transport=counting
    )
    bank = built["sandbox-bank"]
    created = _Created(monkeypatch)
    collections = 8
    for _ in range(collections):
        result = await bank.login("alice", "alice-pass", bank.info.scopes)
        assert result.outcome is Outcome.COLLECTED
    otp = await bank.login("bob", "bob-pass", ("identity",))
    assert otp.resume_state is not None
    right = await bank.submit_otp(otp.resume_state, "123456", ("identity",))
    assert right.data["identity"]["family_name"] == "Dubois"

    assert created.transports == 0  # no attempt built a transport of its own...
    assert created.ssl_contexts == 0  # ...nor loaded the CA bundle
    # login page, login post, its redirect to the profile, the accounts page: 4 a collection
    assert counting.requests >= 4 * collections
    # Sequential attempts reuse the pooled keep-alive connection (one more would be a portal
    # closing it; a pool per attempt would open one per collection).
    assert 1 <= counting.connections <= 2, counting.connections
    assert counting.closes == 0  # closing an attempt's client leaves the pool open

    await _close_all(built)
    assert counting.closes == 0  # an injected transport is the caller's to close
    await counting.aclose()


async def test_connector_owns_one_pool_and_closes_it(
    sandbox_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = _Created(monkeypatch)
    connector = PortalConnector(BANK, sandbox_url, 5.0)
    assert (created.transports, created.ssl_contexts) == (1, 1)  # made once, up front
    for _ in range(5):
        result = await connector.login("alice", "alice-pass", ("bank_account",))
        assert result.data["bank_account"]["iban"] == "FR7699990000010001234567834"
    assert (created.transports, created.ssl_contexts) == (1, 1)
    await connector.aclose()
    await connector.aclose()  # idempotent, as the broker may stop twice
    with pytest.raises(RuntimeError, match="closed"):
        await connector.login("alice", "alice-pass", ("identity",))


async def test_concurrent_attempts_never_share_cookies(sandbox_url: str) -> None:
    """Attempts for different people run at the same time over one pool: each gets its own
    person's data, and no cookie the portal set for one is ever sent in another."""
    counting = CountingTransport(delay=0.01)
    bank = build_connectors(
        Settings(connector_timeout=5.0), base_url=sandbox_url, transport=counting
    )["sandbox-bank"]

    async def alice(label: str) -> str:
        _ATTEMPT.set(label)
        result = await bank.login("alice", "alice-pass", ("identity",))
        return result.data["identity"]["family_name"]

    async def bob(label: str) -> str:
        _ATTEMPT.set(label)
        first = await bank.login("bob", "bob-pass", ("identity",))
        assert first.resume_state is not None
        result = await bank.submit_otp(first.resume_state, "123456", ("identity",))
        return result.data["identity"]["family_name"]

    labels = [f"{name}-{n}" for n in range(3) for name in ("alice", "bob")]
    names = await asyncio.gather(
        *(alice(label) if label.startswith("alice") else bob(label) for label in labels)
    )
    await counting.aclose()

    assert names == ["Martin", "Dubois"] * 3
    switches = sum(1 for a, b in zip(counting.order, counting.order[1:], strict=False) if a != b)
    assert switches > len(labels)  # the attempts really ran interleaved
    assert set(counting.set) == set(labels)  # every attempt got its own session cookies
    for label in labels:
        # whatever an attempt sent, the portal had set for that very attempt
        assert counting.sent.get(label, set()) <= counting.set[label]
        for other in labels:
            if other != label:
                assert not counting.set[label] & counting.set[other]


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match[1]
