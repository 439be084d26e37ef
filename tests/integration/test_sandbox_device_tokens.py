"""Device tokens ("remember this device") against the sandbox portals, over real HTTP on
loopback: a login that asks for one gets it (straight in, or once the code is right), the token
alone signs in again and collects the same data, `scopes=()` only checks the sign-in, and every
way a token ends (forgotten, revoked by the control route, used once at the telecom operator,
90 days old, another source's, a locked account's) is DEVICE_TOKEN_REVOKED or the account's
refusal. The token is a credential: it never shows in a repr, a log line or an exception."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from sharelock.clock import FrozenClock
from sharelock.config import Settings
from sharelock.connectors import (
    DATA_SOURCES,
    CollectionResult,
    Connector,
    Outcome,
    RemembersDevice,
    build_connectors,
)
from sharelock.connectors.html import read_page
from sharelock.sandbox import create_sandbox_app
from sharelock.sandbox.state import DEVICE_TOKEN_TTL_S, SandboxState
from sharelock.scopes import DOCUMENT_SCOPES
from tests.integration.test_sandbox_connectors import EXPECTED
from tests.support.sandbox import source_mode
from tests.support.server import serve_app

ALICE = EXPECTED["sandbox-bank"][2]  # what alice's login collects at the bank
DATA_SCOPES = ("identity", "address", "bank_account")
PHONE = {"phone": {"phone_number": "+33612345678"}}


@dataclass(frozen=True)
class Sandbox:
    url: str
    state: SandboxState
    clock: FrozenClock


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """A sandbox whose device tokens are dated by a clock the tests move."""
    clock = FrozenClock()
    states: list[SandboxState] = []

    def build(_url: str) -> object:
        app = create_sandbox_app(slow_seconds=3.0, clock=clock)
        states.append(app.state.sandbox)
        return app

    with serve_app(build) as server:
        yield Sandbox(server.url, states[0], clock)


@pytest.fixture(scope="module")
async def connectors(sandbox: Sandbox) -> AsyncIterator[dict[str, Connector]]:
    built = build_connectors(Settings(connector_timeout=5.0), base_url=sandbox.url)
    yield built
    for connector in built.values():
        await connector.aclose()


def remembering(connectors: dict[str, Connector], source_id: str) -> RemembersDevice:
    connector = connectors[source_id]
    assert isinstance(connector, RemembersDevice)
    return connector


@pytest.fixture
def bank(connectors: dict[str, Connector]) -> RemembersDevice:
    return remembering(connectors, "sandbox-bank")


@pytest.fixture
def telecom(connectors: dict[str, Connector]) -> RemembersDevice:
    return remembering(connectors, "sandbox-telecom")


async def token_of(connector: RemembersDevice, login: str, password: str) -> str:
    result = await connector.login(login, password, (), remember=True)
    assert result.outcome is Outcome.COLLECTED
    assert result.device_token is not None
    return result.device_token


def _control(sandbox: Sandbox, source: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{sandbox.url}/_control/{source}", json=body, timeout=5)


# -- what the sources declare ------------------------------------------------------------------


def test_bank_and_telecom_remember_devices(connectors: dict[str, Connector]) -> None:
    assert {info.id: info.remembers_device for info in DATA_SOURCES} == {
        "sandbox-bank": True,
        "sandbox-telecom": True,
        "sandbox-energy": False,
        "sandbox-tax": False,
    }
    for connector in connectors.values():
        assert isinstance(connector, Connector)
        assert isinstance(connector, RemembersDevice)


def test_login_forms_offer_the_box_where_tokens_exist(sandbox: Sandbox) -> None:
    for key, offered in (("bank", True), ("telecom", True), ("energy", False), ("tax", False)):
        form = read_page(httpx.get(f"{sandbox.url}/{key}/login").text).form_with("password")
        assert form is not None
        assert form.has_input("remember_device") is offered
        if offered:
            assert form.inputs["remember_device"] == ("checkbox", "1")


# -- the portal itself -------------------------------------------------------------------------


def test_portal_shows_the_token_once_and_only_when_asked(sandbox: Sandbox) -> None:
    with httpx.Client(base_url=sandbox.url, follow_redirects=True, timeout=5) as client:
        form = read_page(client.get("/bank/login").text).form_with("password")
        assert form is not None
        asked = {**form.hidden, "username": "alice", "password": "alice-pass"}
        first = read_page(client.post("/bank/login", data={**asked, "remember_device": "1"}).text)
        assert first.marker == "profile"
        assert first.device_token is not None
        assert len(first.device_token) >= 22  # 128 bits and more, base64url
        again = read_page(client.get("/bank/profile").text)
        assert again.marker == "profile"
        assert again.device_token is None
        plain = read_page(client.post("/bank/login", data=asked).text)
        assert plain.marker == "profile"
        assert plain.device_token is None


def test_resume_and_forget_need_the_login_csrf_token(sandbox: Sandbox) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=5) as client:
        client.get("/bank/login")
        for path in ("/bank/resume", "/bank/resume/forget"):
            answer = client.post(path, data={"device_token": "x", "csrf_token": "wrong"})
            assert answer.status_code == 400
            assert read_page(answer.text).error == "csrf"


def test_forget_is_idempotent_at_the_portal(sandbox: Sandbox) -> None:
    with httpx.Client(base_url=sandbox.url, timeout=5) as client:
        form = read_page(client.get("/bank/login").text).form_with("password")
        assert form is not None
        for _ in range(2):
            answer = client.post(
                "/bank/resume/forget", data={**form.hidden, "device_token": "unknown-token"}
            )
            assert answer.status_code == 200
            assert read_page(answer.text).error is None
        revoked = client.post("/bank/resume", data={**form.hidden, "device_token": "unknown"})
        assert revoked.status_code == 200
        page = read_page(revoked.text)
        assert (page.marker, page.error) == ("login", "device_token_revoked")


def test_control_route_validates_its_body(sandbox: Sandbox) -> None:
    for body in ({}, {"revoke_device_tokens": "yes"}, {"revoke_device_tokens": False}):
        answer = _control(sandbox, "sandbox-bank", body)
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_request"


# -- the connector -----------------------------------------------------------------------------


async def test_token_at_login_resumes_with_the_same_data(bank: RemembersDevice) -> None:
    first = await bank.login("alice", "alice-pass", DATA_SCOPES, remember=True)
    assert first.outcome is Outcome.COLLECTED
    assert first.data == ALICE
    assert first.device_token is not None
    for _ in range(2):  # the bank's tokens last: each resume collects again
        again = await bank.resume(first.device_token, DATA_SCOPES)
        assert again.outcome is Outcome.COLLECTED
        assert again.data == ALICE
        assert again.device_token is None


async def test_resume_collects_documents_too(bank: RemembersDevice) -> None:
    token = await token_of(bank, "alice", "alice-pass")
    result = await bank.resume(token, bank.info.scopes)
    assert result.outcome is Outcome.COLLECTED
    assert set(result.data) == set(bank.info.scopes)
    assert {s for s in result.data if s in DOCUMENT_SCOPES} == {
        "bank_details_document",
        "bank_statement_document",
    }


async def test_no_token_unless_asked(bank: RemembersDevice, sandbox: Sandbox) -> None:
    before = sandbox.state.devices.count("bank", "eleonore")
    result = await bank.login("eleonore", "eleonore-pass", ("identity",))
    assert result.outcome is Outcome.COLLECTED
    assert result.device_token is None
    assert sandbox.state.devices.count("bank", "eleonore") == before


async def test_token_after_the_one_time_code(bank: RemembersDevice) -> None:
    first = await bank.login("bob", "bob-pass", ("identity",), remember=True)
    assert first.outcome is Outcome.OTP_REQUIRED
    assert first.device_token is None
    assert first.resume_state is not None
    assert json.loads(first.resume_state)["remember"] is True
    wrong = await bank.submit_otp(first.resume_state, "000000", ("identity",))
    assert wrong.outcome is Outcome.INVALID_OTP
    assert wrong.device_token is None
    assert wrong.resume_state is not None  # the wish survives a wrong code
    right = await bank.submit_otp(wrong.resume_state, "123456", ("identity",))
    assert right.outcome is Outcome.COLLECTED
    assert right.data["identity"]["family_name"] == "Dubois"
    assert right.device_token is not None

    resumed = await bank.resume(right.device_token, ("identity", "bank_account"))
    assert resumed.outcome is Outcome.COLLECTED  # no code asked
    assert resumed.data["identity"]["family_name"] == "Dubois"
    assert resumed.data["bank_account"]["account_holder"] == "ROBERT DUBOIS"


async def test_one_time_code_without_the_wish_gives_no_token(bank: RemembersDevice) -> None:
    first = await bank.login("bob", "bob-pass", ("identity",))
    assert first.resume_state is not None
    assert "remember" not in json.loads(first.resume_state)
    right = await bank.submit_otp(first.resume_state, "123456", ("identity",))
    assert right.outcome is Outcome.COLLECTED
    assert right.device_token is None


async def test_empty_scopes_check_the_sign_in_only(bank: RemembersDevice) -> None:
    checked = await bank.login("alice", "alice-pass", (), remember=True)
    assert checked.outcome is Outcome.COLLECTED
    assert checked.data == {}
    assert checked.device_token is not None
    resumed = await bank.resume(checked.device_token, ())
    assert resumed.outcome is Outcome.COLLECTED
    assert resumed.data == {}

    wrong = await bank.login("alice", "wrong-pass", ())
    assert wrong.outcome is Outcome.INVALID_CREDENTIALS
    assert (await bank.resume("not-a-token", ())).outcome is Outcome.DEVICE_TOKEN_REVOKED

    otp = await bank.login("bob", "bob-pass", (), remember=True)
    assert otp.outcome is Outcome.OTP_REQUIRED
    assert otp.resume_state is not None
    done = await bank.submit_otp(otp.resume_state, "123456", ())
    assert done.outcome is Outcome.COLLECTED
    assert done.data == {}
    assert done.device_token is not None


async def test_unknown_scope_is_still_a_caller_error(telecom: RemembersDevice) -> None:
    with pytest.raises(ValueError, match="provides only"):
        await telecom.resume("some-token", ("bank_account",))


async def test_forgotten_token_is_revoked(bank: RemembersDevice) -> None:
    token = await token_of(bank, "alice", "alice-pass")
    await bank.forget(token)
    assert (await bank.resume(token, ("identity",))).outcome is Outcome.DEVICE_TOKEN_REVOKED
    await bank.forget(token)  # again: nothing to do, nothing raised


async def test_control_route_revokes_a_source_s_tokens(
    bank: RemembersDevice, telecom: RemembersDevice, sandbox: Sandbox
) -> None:
    alice = await token_of(bank, "alice", "alice-pass")
    claire = await token_of(bank, "claire", "claire-pass")
    carol = await token_of(telecom, "carol", "carol-pass")
    answer = _control(sandbox, "sandbox-bank", {"revoke_device_tokens": True})
    assert answer.status_code == 200
    assert answer.json()["source"] == "sandbox-bank"
    assert answer.json()["revoked_device_tokens"] >= 2
    assert sandbox.state.devices.count("bank") == 0
    for token in (alice, claire):
        assert (await bank.resume(token, ())).outcome is Outcome.DEVICE_TOKEN_REVOKED
    assert (await telecom.resume(carol, ("phone",))).data == PHONE  # another source's: kept


async def test_telecom_tokens_open_one_session(telecom: RemembersDevice) -> None:
    token = await token_of(telecom, "carol", "carol-pass")
    first = await telecom.resume(token, ("phone",))
    assert first.outcome is Outcome.COLLECTED
    assert first.data == PHONE
    assert (await telecom.resume(token, ("phone",))).outcome is Outcome.DEVICE_TOKEN_REVOKED

    dave = await telecom.login("dave", "dave-pass", ("phone",), remember=True)
    assert dave.resume_state is not None
    done = await telecom.submit_otp(dave.resume_state, "123456", ("phone",))
    assert done.device_token is not None
    assert (await telecom.resume(done.device_token, ())).outcome is Outcome.COLLECTED
    assert (await telecom.resume(done.device_token, ())).outcome is Outcome.DEVICE_TOKEN_REVOKED


async def test_tokens_expire_after_90_days(bank: RemembersDevice, sandbox: Sandbox) -> None:
    start = sandbox.clock.now()
    try:
        token = await token_of(bank, "alice", "alice-pass")
        sandbox.clock.advance(DEVICE_TOKEN_TTL_S - 1)
        assert (await bank.resume(token, ())).outcome is Outcome.COLLECTED
        sandbox.clock.advance(2)
        assert (await bank.resume(token, ())).outcome is Outcome.DEVICE_TOKEN_REVOKED
    finally:
        sandbox.clock.set(start)
    # Gone for good: the clock going back does not bring it back.
    assert (await bank.resume(token, ())).outcome is Outcome.DEVICE_TOKEN_REVOKED


async def test_locked_account_never_resumes(bank: RemembersDevice, sandbox: Sandbox) -> None:
    locked = await bank.login("locked", "locked-pass", ("identity",), remember=True)
    assert locked.outcome is Outcome.ACCOUNT_LOCKED
    assert locked.device_token is None
    assert sandbox.state.devices.count("bank", "locked") == 0
    # A token the account held before its lock (minted at the source directly).
    token = sandbox.state.devices.mint("bank", "locked")
    for scopes in ((), ("identity",)):
        result = await bank.resume(token, scopes)
        assert result.outcome is Outcome.ACCOUNT_LOCKED
        assert result.data == {}
    down = sandbox.state.devices.mint("bank", "down")
    assert (await bank.resume(down, ())).outcome is Outcome.SOURCE_UNAVAILABLE


async def test_a_token_opens_only_its_own_source(
    bank: RemembersDevice, telecom: RemembersDevice, sandbox: Sandbox
) -> None:
    token = await token_of(bank, "alice", "alice-pass")
    assert (await telecom.resume(token, ("phone",))).outcome is Outcome.DEVICE_TOKEN_REVOKED
    await telecom.forget(token)  # another source cannot revoke it either
    assert (await bank.resume(token, ("identity",))).data["identity"] == ALICE["identity"]
    # Energy does not remember devices: the token is refused without asking the portal.
    energy = await build_and_resume(sandbox, "sandbox-energy", token)
    assert energy.outcome is Outcome.DEVICE_TOKEN_REVOKED


async def build_and_resume(sandbox: Sandbox, source_id: str, token: str) -> CollectionResult:
    built = build_connectors(Settings(connector_timeout=5.0), base_url=sandbox.url)
    try:
        return await remembering(built, source_id).resume(token, ())
    finally:
        for connector in built.values():
            await connector.aclose()


async def test_sources_without_tokens_ignore_the_wish(connectors: dict[str, Connector]) -> None:
    energy = remembering(connectors, "sandbox-energy")
    result = await energy.login("erin", "erin-pass", ("email",), remember=True)
    assert result.outcome is Outcome.COLLECTED
    assert result.device_token is None
    await energy.forget("anything")


async def test_resume_when_the_source_is_down(bank: RemembersDevice, sandbox: Sandbox) -> None:
    token = await token_of(bank, "alice", "alice-pass")
    with source_mode(sandbox.url, "sandbox-bank", "down"):
        assert (await bank.resume(token, ())).outcome is Outcome.SOURCE_UNAVAILABLE
        await bank.forget(token)  # swallowed; the token stays valid
    assert (await bank.resume(token, ())).outcome is Outcome.COLLECTED


async def test_failed_collection_revokes_the_token_it_minted(
    bank: RemembersDevice, sandbox: Sandbox
) -> None:
    result = await bank.login("broken", "broken-pass", ("identity",), remember=True)
    assert result.outcome is Outcome.INVALID_DATA
    assert result.device_token is None
    assert sandbox.state.devices.count("bank", "broken") == 0


async def test_the_token_never_leaks(
    bank: RemembersDevice, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    results: list[CollectionResult] = []
    first = await bank.login("alice", "alice-pass", ("identity",), remember=True)
    assert first.device_token is not None
    token = first.device_token
    results += [first, await bank.resume(token, ("identity",))]
    with source_mode(sandbox.url, "sandbox-bank", "garbage"):
        results.append(await bank.resume(token, ("identity",)))
    await bank.forget(token)
    results.append(await bank.resume(token, ("identity",)))
    otp = await bank.login("bob", "bob-pass", ("identity",), remember=True)
    assert otp.resume_state is not None
    results.append(await bank.submit_otp(otp.resume_state, "123456", ("identity",)))
    assert [r.outcome for r in results] == [
        Outcome.COLLECTED,
        Outcome.COLLECTED,
        Outcome.SOURCE_UNAVAILABLE,
        Outcome.DEVICE_TOKEN_REVOKED,
        Outcome.COLLECTED,
    ]
    secrets = [token, results[-1].device_token]
    assert results[-1].device_token is not None

    errors: list[BaseException] = []
    with pytest.raises(ValueError) as scope_error:
        await bank.resume(token, ("phone",))
    errors.append(scope_error.value)
    closed = remembering(
        build_connectors(Settings(connector_timeout=5.0), base_url=sandbox.url), "sandbox-bank"
    )
    await closed.aclose()
    with pytest.raises(RuntimeError) as closed_error:
        await closed.resume(token, ())
    errors.append(closed_error.value)

    shown = [repr(r) for r in results] + [str(r) for r in results] + [repr(e) for e in errors]
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    assert re.search(r"source=sandbox-bank step=resume outcome=", caplog.text)
    for secret in secrets:
        assert secret is not None
        assert secret not in logged
        assert all(secret not in text for text in shown)
