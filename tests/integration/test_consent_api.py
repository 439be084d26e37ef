"""The consent screen's JSON API (SPEC "consent screen"): bound to the browser's session cookie,
in step with the flow's status, the sandbox's paths (one-time code, wrong password, locked
account), optional fields, replayed envelopes (checklist 17), bad bodies, and an expired
session (checklist 35). Real HTTP, Redis, SQLite, SoftHSM; the sandbox counts its logins."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sharelock.flow import flow_ref
from sharelock.flow.records import COLLECTED, FLOW, RELEASE
from sharelock.keys import KeyLayer
from tests.support.broker import (
    CountingSandbox,
    Share,
    Stack,
    StackFactory,
    counting_sandbox,
    record_key,
)
from tests.support.redis_server import RedisServer
from tests.support.sandbox import source_mode

IBAN = "FR7699990000010001234567834"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[CountingSandbox]:
    with counting_sandbox() as running:
        yield running


@pytest.fixture(scope="module")
def stack(
    make_stack: StackFactory, redis_server: RedisServer, sandbox: CountingSandbox
) -> Iterator[Stack]:
    with make_stack(redis_url=redis_server.url, sandbox_url=sandbox.url) as running:
        yield running


def started(stack: Stack, **share: Any) -> Share:
    flow = Share(stack, **share)
    assert flow.start().status_code == 303
    return flow


def status_of(flow: Share) -> str:
    response = flow.describe()
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def assert_error(response: httpx.Response, status: int, error: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_description"}, body
    if error is not None:
        assert body["error"] == error
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    assert "sharelock." not in body["error_description"]


def delivered(flow: Share, omit: list[str] | None = None) -> dict[str, Any]:
    token = flow.exchange(flow.approve_and_get_code(omit))
    assert token.status_code == 200, token.text
    shared = flow.fetch(token.json()["access_token"])
    assert shared.status_code == 200, shared.text
    data: dict[str, Any] = shared.json()["data"]
    return data


# -- binding to the browser session ---------------------------------------------------------


def test_describe_says_who_asks_for_what(stack: Stack) -> None:
    flow = started(stack)
    body = flow.describe().json()
    assert body["partner"]["name"] == "Partner A"
    assert body["scopes"] == ["identity", "address", "bank_account"]
    assert body["status"] == "awaiting_credentials"
    assert [s["id"] for s in body["data_sources"]] == ["sandbox-bank"]
    optional = {f["field"] for f in body["fields"] if f["optional"]}
    assert optional == {"gender", "birthplace", "bic"}


def test_requests_without_the_flows_cookie_are_forbidden(
    stack: Stack, sandbox: CountingSandbox
) -> None:
    flow = started(stack)
    other = started(stack)  # another browser, with its own session cookie
    envelope = flow.seal({"login": "alice", "password": "alice-pass"})
    logins = sandbox.logins.total()
    with httpx.Client(base_url=stack.url, timeout=30) as stranger:
        for client in (stranger, other.browser):
            calls = [
                client.get(f"/api/flows/{flow.flow_id}"),
                client.get(f"/api/flows/{flow.flow_id}/data"),
                client.post(
                    f"/api/flows/{flow.flow_id}/credentials",
                    json={"data_source": "sandbox-bank", "credentials": envelope},
                ),
                client.post(f"/api/flows/{flow.flow_id}/otp", json={"otp": envelope}),
                client.post(f"/api/flows/{flow.flow_id}/decision", json={"approve": False}),
            ]
            for response in calls:
                assert_error(response, 403, "forbidden")
        stranger.cookies.set(f"sl_flow_{flow.flow_id}", "A" * 43)
        assert_error(stranger.get(f"/api/flows/{flow.flow_id}"), 403, "forbidden")
    assert sandbox.logins.total() == logins
    assert status_of(flow) == "awaiting_credentials"
    # The right browser still can, with the very envelope the others tried.
    response = flow.browser.post(
        f"/api/flows/{flow.flow_id}/credentials",
        json={"data_source": "sandbox-bank", "credentials": envelope},
    )
    assert response.json()["status"] == "collected"


def test_unknown_flow_is_session_expired(stack: Stack) -> None:
    flow = started(stack)
    for flow_id in ("nope", "A" * 32, "x" * 65):
        assert_error(flow.browser.get(f"/api/flows/{flow_id}"), 404, "session_expired")


# -- in step with the flow's status ---------------------------------------------------------


def test_steps_out_of_order_are_conflicts(stack: Stack) -> None:
    flow = started(stack)
    assert_error(flow.decide(True), 409, "conflict")
    assert_error(flow.review(), 409, "conflict")
    assert_error(flow.send_otp("123456"), 409, "conflict")
    assert status_of(flow) == "awaiting_credentials"
    flow.collect_started()
    again = flow.send_credentials("alice", "alice-pass")
    assert_error(again, 409, "conflict")
    assert flow.approve_and_get_code()
    assert_error(flow.decide(True), 409, "conflict")
    assert_error(flow.decide(False), 409, "conflict")


def test_a_blank_login_is_a_wrong_login_and_reaches_no_source(
    stack: Stack, sandbox: CountingSandbox
) -> None:
    flow = started(stack)
    logins = sandbox.logins.total()
    response = flow.send_credentials("   ", "whatever")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "failed"
    assert response.json()["reason"] == "invalid_credentials"
    assert sandbox.logins.total() == logins
    assert status_of(flow) == "awaiting_credentials"


def test_a_source_that_cannot_provide_the_scopes(stack: Stack) -> None:
    flow = started(stack)
    for source in ("sandbox-energy", "sandbox-unknown", ""):
        response = flow.send_credentials("erin", "erin-pass", data_source=source)
        assert_error(response, 400)
    assert status_of(flow) == "awaiting_credentials"


# -- the sandbox's paths ----------------------------------------------------------------------


def test_one_time_code_path(stack: Stack) -> None:
    flow = started(stack)
    first = flow.send_credentials("bob", "bob-pass")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "otp_required"
    assert status_of(flow) == "otp_required"
    assert_error(flow.decide(True), 409)

    wrong = flow.send_otp("654321")
    assert wrong.status_code == 200
    assert wrong.json()["status"] == "otp_required"
    assert wrong.json()["reason"] == "invalid_otp"

    right = flow.send_otp("123456")
    assert right.json()["status"] == "collected", right.json()
    review = flow.review().json()
    values = {f["field"]: f["value"] for f in review["fields"]}
    assert values["family_name"] == "Dubois"
    data = delivered(flow)
    assert data["identity"]["given_name"] == "Robert"
    assert set(data) == {"identity", "address", "bank_account"}


def test_wrong_password_then_success(stack: Stack) -> None:
    flow = started(stack)
    failed = flow.send_credentials("alice", "not-her-password")
    assert failed.status_code == 200
    assert failed.json()["status"] == "failed"
    assert failed.json()["reason"] == "invalid_credentials"
    assert status_of(flow) == "awaiting_credentials"
    assert_error(flow.review(), 409)
    rows = stack.audit_rows("collection_failed", flow_id=flow.flow_id)
    assert [r.outcome for r in rows] == ["invalid_credentials"]

    flow.collect_started()
    assert delivered(flow)["bank_account"]["iban"] == IBAN


def test_locked_account(stack: Stack) -> None:
    flow = started(stack)
    response = flow.send_credentials("locked", "locked-pass")
    assert response.json()["status"] == "failed"
    assert response.json()["reason"] == "account_locked"
    rows = stack.audit_rows("collection_failed", flow_id=flow.flow_id)
    assert [r.outcome for r in rows] == ["account_locked"]
    assert rows[0].login_hash is not None and rows[0].login_hash.startswith("hmac-sha256:")
    with stack.raw_redis() as raw:
        assert raw.exists(record_key(COLLECTED, flow.flow_id)) == 0


# -- optional and required fields -------------------------------------------------------------


def test_omitted_optional_fields_are_never_delivered(stack: Stack) -> None:
    flow = started(stack)
    flow.collect_started()
    review = {f["field"]: f for f in flow.review().json()["fields"]}
    assert review["birthplace"]["optional"] and review["bic"]["optional"]
    assert review["birthplace"]["value"] == "Lyon"
    data = delivered(flow, omit=["birthplace", "bic"])
    assert "birthplace" not in data["identity"]
    assert "bic" not in data["bank_account"]
    assert data["identity"]["family_name"] == "Martin"
    assert data["bank_account"]["iban"] == IBAN
    # Without omission, the same fields are there: the test above can fail.
    other = started(stack)
    other.collect_started()
    full = delivered(other)
    assert full["identity"]["birthplace"] == "Lyon"
    assert full["bank_account"]["bic"] == "SBOXFRPP"


@pytest.mark.parametrize("omit", [["family_name"], ["iban"], ["birthplace", "street"], ["nope"]])
def test_omitting_a_required_field_is_refused(stack: Stack, omit: list[str]) -> None:
    flow = started(stack)
    flow.collect_started()
    assert_error(flow.decide(True, omit), 400)
    assert status_of(flow) == "collected"
    with stack.raw_redis() as raw:
        assert raw.exists(record_key(RELEASE, flow_ref(flow.flow_id))) == 0
    assert flow.approve_and_get_code()


# -- replayed envelopes (17) ----------------------------------------------------------------


def test_an_envelope_replayed_to_another_flow(
    stack: Stack, sandbox: CountingSandbox, key_layer: KeyLayer
) -> None:
    first = started(stack)
    envelope = first.seal({"login": "alice", "password": "alice-pass"})
    body = {"data_source": "sandbox-bank", "credentials": envelope}
    response = first.browser.post(f"/api/flows/{first.flow_id}/credentials", json=body)
    assert response.json()["status"] == "collected"

    second = started(stack)
    logins = sandbox.logins.total()
    calls = key_layer.token.calls
    replay = second.browser.post(f"/api/flows/{second.flow_id}/credentials", json=body)
    assert_error(replay, 400, "invalid_request")
    assert sandbox.logins.total() == logins
    assert key_layer.token.calls == calls
    assert status_of(second) == "awaiting_credentials"
    assert not stack.audit_rows("credentials_received", flow_id=second.flow_id)
    # A fresh envelope of the same credentials works: alice would have logged in.
    second.collect_started()
    assert sandbox.logins.total() == logins + 1


def test_an_envelope_replayed_to_the_same_flow(stack: Stack, sandbox: CountingSandbox) -> None:
    flow = started(stack)
    envelope = flow.seal({"login": "alice", "password": "alice-pass"})
    body = {"data_source": "sandbox-bank", "credentials": envelope}
    with source_mode(sandbox.url, "sandbox-bank", "down"):
        failed = flow.browser.post(f"/api/flows/{flow.flow_id}/credentials", json=body)
    assert failed.json()["status"] == "failed"
    assert failed.json()["reason"] == "source_unavailable"
    logins = sandbox.logins.total()
    replay = flow.browser.post(f"/api/flows/{flow.flow_id}/credentials", json=body)
    assert_error(replay, 400, "invalid_request")
    assert sandbox.logins.total() == logins
    assert status_of(flow) == "awaiting_credentials"
    assert len(stack.audit_rows("credentials_received", flow_id=flow.flow_id)) == 1


def test_an_otp_envelope_cannot_be_replayed(stack: Stack, sandbox: CountingSandbox) -> None:
    flow = started(stack)
    assert flow.send_credentials("bob", "bob-pass").json()["status"] == "otp_required"
    wrong = flow.seal({"otp": "000000"})
    assert flow.send_otp("000001").json()["reason"] == "invalid_otp"
    response = flow.browser.post(f"/api/flows/{flow.flow_id}/otp", json={"otp": wrong})
    assert response.json()["reason"] == "invalid_otp"
    posts = sandbox.logins.total()
    replay = flow.browser.post(f"/api/flows/{flow.flow_id}/otp", json={"otp": wrong})
    assert_error(replay, 400, "invalid_request")
    assert sandbox.logins.total() == posts
    assert flow.send_otp("123456").json()["status"] == "collected"


def test_a_garbage_envelope_logs_in_nowhere(stack: Stack, sandbox: CountingSandbox) -> None:
    flow = started(stack)
    logins = sandbox.logins.total()
    for envelope in ("not-a-jwe", "a.b.c.d.e", "eyJhbGciOiJub25lIn0.e30.e30.e30.e30"):
        response = flow.browser.post(
            f"/api/flows/{flow.flow_id}/credentials",
            json={"data_source": "sandbox-bank", "credentials": envelope},
        )
        assert_error(response, 400, "invalid_request")
    assert sandbox.logins.total() == logins
    assert status_of(flow) == "awaiting_credentials"


# -- bad bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("credentials", b"{"),
        ("credentials", b"not json at all"),
        ("credentials", b"[]"),
        ("credentials", b'"string"'),
        ("credentials", b"{}"),
        ("credentials", b'{"data_source": "sandbox-bank"}'),
        ("credentials", b'{"data_source": 7, "credentials": "a.b.c.d.e"}'),
        ("credentials", b'{"data_source": "sandbox-bank", "credentials": null}'),
        ("credentials", b'{"data_source": "sandbox-bank", "credentials": "x", "login": "a"}'),
        ("credentials", b"\xff\xfe\x00garbage"),
        ("credentials", b""),
        ("otp", b'{"otp": 123456}'),
        ("otp", b'{"code": "123456"}'),
        ("decision", b'{"approve": "yes please"}'),
        ("decision", b'{"approve": true, "omit": "bic"}'),
        ("decision", b'{"approve": true, "omit": [1, 2]}'),
        ("decision", b'{"omit": []}'),
        ("decision", b'{"approve": true, "omit": ["' + b"x" * 100 + b'"]}'),
        ("decision", b'{"approve": true, "omit": ' + json.dumps(["bic"] * 40).encode() + b"}"),
    ],
)
def test_malformed_bodies_are_400_without_a_trace(
    stack: Stack, sandbox: CountingSandbox, path: str, content: bytes
) -> None:
    flow = started(stack)
    logins = sandbox.logins.total()
    response = flow.browser.post(
        f"/api/flows/{flow.flow_id}/{path}",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "invalid_request")
    assert sandbox.logins.total() == logins
    assert status_of(flow) == "awaiting_credentials"


def test_a_secret_in_a_bad_body_is_not_echoed(stack: Stack) -> None:
    flow = started(stack)
    planted = "Plant-echo-77c1-pw"
    response = flow.browser.post(
        f"/api/flows/{flow.flow_id}/credentials",
        json={"data_source": "sandbox-bank", "credentials": 5, "password": planted},
    )
    assert_error(response, 400, "invalid_request")
    assert planted not in response.text


def test_oversized_bodies_are_413(stack: Stack, sandbox: CountingSandbox) -> None:
    flow = started(stack)
    logins = sandbox.logins.total()
    big = json.dumps({"data_source": "sandbox-bank", "credentials": "a" * (81 * 1024)}).encode()
    response = flow.browser.post(
        f"/api/flows/{flow.flow_id}/credentials",
        content=big,
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    chunked = flow.browser.post(
        f"/api/flows/{flow.flow_id}/credentials",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert "content-length" not in chunked.request.headers
    assert_error(chunked, 413)
    assert sandbox.logins.total() == logins
    assert status_of(flow) == "awaiting_credentials"


# -- expired session (35) ----------------------------------------------------------------------


def test_credentials_after_the_session_expired(
    stack: Stack, sandbox: CountingSandbox, key_layer: KeyLayer
) -> None:
    flow = started(stack)
    envelope = flow.seal({"login": "alice", "password": "alice-pass"})
    with stack.raw_redis() as raw:
        assert raw.pexpire(record_key(FLOW, flow.flow_id), 1)
        deadline_ms = 2000
        while raw.exists(record_key(FLOW, flow.flow_id)) and deadline_ms > 0:
            deadline_ms -= 10
            raw.ping()
        logins = sandbox.logins.total()
        calls = key_layer.token.calls
        response = flow.browser.post(
            f"/api/flows/{flow.flow_id}/credentials",
            json={"data_source": "sandbox-bank", "credentials": envelope},
        )
        assert_error(response, 404, "session_expired")
        assert key_layer.token.calls == calls
        assert sandbox.logins.total() == logins
    assert not stack.audit_rows("credentials_received", flow_id=flow.flow_id)
    for response in (flow.describe(), flow.review(), flow.decide(True), flow.send_otp("1")):
        assert_error(response, 404, "session_expired")


@pytest.mark.parametrize(
    ("lang", "accept", "gender", "birthdate", "country"),
    [
        ("fr", None, "Femme", "14 mars 1985", "France"),
        (None, "fr-FR,fr;q=0.9", "Femme", "14 mars 1985", "France"),
        ("en", "fr", "Female", "March 14, 1985", "France"),
    ],
)
def test_review_shows_values_in_the_persons_language(
    stack: Stack,
    lang: str | None,
    accept: str | None,
    gender: str,
    birthdate: str,
    country: str,
) -> None:
    """ "Sexe : female", ISO dates and "FR" read as code: the review gives each value as the
    person's language writes it (Babel), beside the value the partner receives, unchanged."""
    flow = started(stack)
    assert flow.send_credentials("alice", "alice-pass").json()["status"] == "collected"
    headers = {"Accept-Language": accept} if accept else {}
    params = {"lang": lang} if lang else {}
    review = flow.browser.get(f"/api/flows/{flow.flow_id}/data", params=params, headers=headers)
    assert review.status_code == 200, review.text
    fields = {f["field"]: f for f in review.json()["fields"]}
    assert (fields["gender"]["value"], fields["gender"]["display"]) == ("female", gender)
    assert fields["birthdate"]["value"] == "1985-03-14"
    assert fields["birthdate"]["display"] == birthdate
    assert (fields["country"]["value"], fields["country"]["display"]) == ("FR", country)
    assert "display" not in fields["family_name"]  # a name reads the same in every language
    assert delivered(flow)["identity"]["gender"] == "female"
