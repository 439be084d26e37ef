"""The auditor's HTTP API over the real stack: uvicorn on loopback, SoftHSM, Redis, SQLite, the
sandbox bank, and an auditor created in the broker's own database. A real share runs first,
so the traces searched are the ones the flow wrote."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jwcrypto import jwk as jwcrypto_jwk
from sqlalchemy import Engine, text

from sharelock.audit import Checkpointer, login_hash_input
from sharelock.audit.records import COLUMNS
from sharelock.auditors import AuditorRegistry, token_digest
from sharelock.keys import KeyLayer
from tests.support.broker import Share, Stack, StackFactory
from tests.support.redis_server import RedisServer

# Used only in /audit/hash: it must never appear in clear in a log line or an audit row.
PLANTED_LOGIN = "Planted.Login-7Qx@Example.org"


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory, redis_server: RedisServer, sandbox_url: str) -> Iterator[Stack]:
    with make_stack(redis_url=redis_server.url, sandbox_url=sandbox_url) as running:
        Share(running).complete()  # alice at the sandbox bank, delivered
        yield running


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Engine:
    assert stack.engine is not None
    return stack.engine


@pytest.fixture(scope="module")
def auditor(engine: Engine) -> tuple[str, str]:
    """(auditor id, bearer token) of an auditor added to the broker's database."""
    added, token = AuditorRegistry(engine).add("Test auditor")
    return added.auditor_id, token


@pytest.fixture(scope="module")
def api(stack: Stack, auditor: tuple[str, str]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {auditor[1]}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as client:
        yield client


def _dump(engine: Engine) -> str:
    with engine.connect() as connection:
        rows = [
            *connection.execute(text("SELECT * FROM audit_events")).all(),
            *connection.execute(text("SELECT * FROM auditors")).all(),
        ]
    return repr(rows)


def _queries(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT * FROM audit_events WHERE event = 'auditor_query' ORDER BY id")
        ).mappings()
        return [dict(row) for row in rows]


ENDPOINTS = [
    ("POST", "/audit/hash", {"data_source": "sandbox-bank", "login": "alice"}),
    ("GET", "/audit/traces", None),
    ("GET", "/audit/traces?format=csv", None),
    ("GET", "/audit/verify", None),
    ("GET", "/audit/checkpoints", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer sla_not-a-real-token", "Basic dXNlcjpwYXNz", "bearer x y"],
    ids=["none", "empty", "unknown", "basic", "garbage"],
)
def test_every_endpoint_refuses_without_an_auditor_token(
    stack: Stack,
    engine: Engine,
    method: str,
    path: str,
    body: dict[str, str] | None,
    authorization: str | None,
) -> None:
    before = len(_queries(engine))
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.request(method, stack.url + path, json=body, headers=headers, timeout=30)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == "invalid_token"
    assert "hmac-sha256" not in response.text and "traces" not in response.json()
    assert len(_queries(engine)) == before  # nothing was asked, nothing recorded


def test_a_partner_secret_is_not_an_auditor_token(stack: Stack) -> None:
    with stack.partner_client() as client:
        assert client.get("/audit/traces").status_code == 401
    bearer = {"Authorization": f"Bearer {stack.partner.client_secret}"}
    assert httpx.get(f"{stack.url}/audit/verify", headers=bearer).status_code == 401


def test_hash_is_what_the_flow_stored(
    api: httpx.Client, stack: Stack, key_layer: KeyLayer, engine: Engine, auditor: tuple[str, str]
) -> None:
    response = api.post("/audit/hash", json={"data_source": "sandbox-bank", "login": " Alice "})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    digest = response.json()["login_hash"]
    assert digest == key_layer.keyed_hash(login_hash_input("sandbox-bank", "alice"))
    flow_rows = [r for r in stack.audit_rows() if r.event != "auditor_query"]
    stored = {r.login_hash for r in flow_rows if r.login_hash}
    assert stored == {digest}  # exactly the pseudonym the share wrote

    traces = api.get("/audit/traces", params={"login_hash": digest, "limit": 1000}).json()
    events = {t["event"] for t in traces["traces"]}
    assert {"collection_succeeded", "data_delivered"} <= events
    assert all(t["login_hash"] == digest for t in traces["traces"])
    other = api.post("/audit/hash", json={"data_source": "sandbox-telecom", "login": "alice"})
    assert other.json()["login_hash"] != digest

    recorded = _queries(engine)[-1]  # the last question: the telecom hash
    assert recorded["actor"] == f"auditor:{auditor[0]}"
    assert recorded["outcome"] == "hash" and recorded["data_source"] == "sandbox-telecom"
    assert recorded["login_hash"] == other.json()["login_hash"]
    asked = [q for q in _queries(engine) if q["outcome"] == "traces"]
    assert asked[-1]["login_hash"] == digest and "limit=1000" in asked[-1]["query"]


def test_a_planted_login_leaks_nowhere(
    api: httpx.Client, engine: Engine, auditor: tuple[str, str], all_logs: pytest.LogCaptureFixture
) -> None:
    response = api.post("/audit/hash", json={"data_source": "sandbox-bank", "login": PLANTED_LOGIN})
    assert response.status_code == 200
    bad = api.post("/audit/hash", json={"data_source": "Not A Source", "login": PLANTED_LOGIN})
    assert bad.status_code == 400 and PLANTED_LOGIN not in bad.text
    too_long = api.post("/audit/hash", json={"data_source": "sandbox-bank", "login": "x" * 300})
    assert too_long.status_code == 400 and "x" * 300 not in too_long.text
    dump = _dump(engine)
    logged = "\n".join(record.getMessage() for record in all_logs.records)
    for form in (PLANTED_LOGIN, PLANTED_LOGIN.lower(), "planted.login"):
        assert form not in dump.lower() and form.lower() not in logged.lower()
    assert response.json()["login_hash"] in dump  # the question is recorded, by hash
    assert auditor[1] not in dump and auditor[1] not in logged  # the token neither
    assert token_digest(auditor[1]) in dump  # only its digest, in the auditors table


def test_traces_filters_and_pagination(api: httpx.Client, stack: Stack) -> None:
    everything = api.get("/audit/traces", params={"limit": 1000}).json()
    ids = [t["id"] for t in everything["traces"]]
    assert ids == sorted(ids) and len(ids) >= 5 and everything["next_offset"] is None
    first = api.get("/audit/traces", params={"limit": 2}).json()
    assert [t["id"] for t in first["traces"]] == ids[:2] and first["next_offset"] == 2
    second = api.get("/audit/traces", params={"limit": 2, "offset": 2}).json()
    assert [t["id"] for t in second["traces"]] == ids[2:4]

    client_id = stack.partner.client_id
    mine = api.get("/audit/traces", params={"client_id": client_id, "limit": 1000}).json()
    assert mine["traces"] and {t["client_id"] for t in mine["traces"]} == {client_id}
    # The question is recorded before it is answered, with its filters: for a partner or a
    # source with no share, the only row is that record itself.
    none = api.get("/audit/traces", params={"client_id": stack.other_partner.client_id})
    assert [t["event"] for t in none.json()["traces"]] == ["auditor_query"]
    tax = api.get("/audit/traces", params={"data_source": "sandbox-tax"}).json()
    assert [(t["event"], t["outcome"]) for t in tax["traces"]] == [("auditor_query", "traces")]

    middle = everything["traces"][2]["at"]
    since = api.get("/audit/traces", params={"since": middle, "limit": 1000}).json()
    assert since["traces"][0]["at"] >= middle and len(since["traces"]) < len(ids) + 10
    until = api.get("/audit/traces", params={"until": middle, "limit": 1000}).json()
    assert all(t["at"] < middle for t in until["traces"]) and len(until["traces"]) >= 1
    future = api.get("/audit/traces", params={"since": "2999-01-01"}).json()
    assert future["traces"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"login_hash": "alice"}, "login_hash"),
        ({"client_id": "Partner A"}, "client_id"),
        ({"since": "2025-01-01T00:00:00"}, "since"),  # no offset: refused, not guessed
        ({"until": "yesterday"}, "until"),
        ({"since": "2025-02-01", "until": "2025-01-01"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_filters_are_a_clear_400(api: httpx.Client, params: dict[str, str], field: str) -> None:
    response = api.get("/audit/traces", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request" and field in body["error_description"]
    for value in params.values():
        if len(value) > 4:
            assert value not in body["error_description"]


def test_exports(api: httpx.Client, engine: Engine) -> None:
    page = api.get("/audit/traces", params={"limit": 1000}).json()["traces"]
    as_csv = api.get("/audit/traces", params={"format": "csv"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert tuple(rows[0]) == COLUMNS
    # Each export is itself recorded first, so it holds the rows of the page, plus the
    # questions asked since (the page's own row included).
    exported = [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]
    assert [int(r["id"]) for r in exported[: len(page)]] == [t["id"] for t in page]
    assert exported[0]["row_hash"] == page[0]["row_hash"]
    assert exported[-1]["event"] == "auditor_query" and "format=csv" in exported[-1]["query"]

    as_jsonl = api.get("/audit/traces", params={"format": "jsonl", "until": "2000-01-01"})
    assert as_jsonl.headers["content-type"].startswith("application/x-ndjson")
    assert as_jsonl.text == ""  # nothing that old
    lines = api.get("/audit/traces", params={"format": "jsonl"}).text.splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [p["id"] for p in parsed[: len(page)]] == [t["id"] for t in page]
    assert set(parsed[0]) == set(COLUMNS)


def test_verify_and_checkpoints(
    api: httpx.Client, engine: Engine, key_layer: KeyLayer, stack: Stack
) -> None:
    report = api.get("/audit/verify").json()
    assert report["ok"] is True and report["problems"] == []
    assert report["rows_checked"] == report["last_id"] >= 5
    made = Checkpointer(engine, key_layer, stack.settings.issuer).checkpoint()
    listed = api.get("/audit/checkpoints").json()
    assert [c["jws"] for c in listed["checkpoints"]] == [made.jws]
    assert listed["signing_key"] == key_layer.signing_jwk()
    assert api.get("/audit/verify").json()["attested_through_id"] == made.last_id

    with engine.begin() as connection:
        original = connection.scalar(text("SELECT outcome FROM audit_events WHERE id = 2"))
        connection.execute(text("UPDATE audit_events SET outcome = 'forged' WHERE id = 2"))
    try:
        broken = api.get("/audit/verify").json()
        assert broken["ok"] is False
        assert (broken["first_bad_id"], broken["reason"]) == (2, "altered")
    finally:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE audit_events SET outcome = :o WHERE id = 2"), {"o": original}
            )
    assert api.get("/audit/verify").json()["ok"] is True


def test_jwks_publishes_the_signing_key(stack: Stack, key_layer: KeyLayer) -> None:
    keys = httpx.get(f"{stack.url}/.well-known/jwks.json").json()["keys"]
    signing = [k for k in keys if k.get("use") == "sig"]
    assert len(signing) == 1 and keys[-1] == signing[0]
    key = signing[0]
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
    assert not {"d", "p", "q"} & set(key)
    assert key["kid"] == jwcrypto_jwk.JWK(**key).thumbprint()
    assert keys[0]["use"] == "enc"  # clients taking the first key still get an encryption key


def test_queries_fail_closed_when_they_cannot_be_recorded(
    api: httpx.Client, engine: Engine
) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
    try:
        hashed = api.post("/audit/hash", json={"data_source": "sandbox-bank", "login": "alice"})
        assert hashed.status_code == 503
        assert "hmac-sha256" not in hashed.text and hashed.headers["retry-after"]
        for params in ({}, {"format": "csv"}, {"format": "jsonl"}):
            refused = api.get("/audit/traces", params=params)
            assert refused.status_code == 503 and "sandbox-bank" not in refused.text
        assert api.get("/audit/verify").status_code == 503
        assert api.get("/audit/checkpoints").status_code == 503
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP TRIGGER refuse_audit"))
    assert api.get("/audit/traces").status_code == 200


def test_revoked_auditor_is_refused(stack: Stack, engine: Engine) -> None:
    registry = AuditorRegistry(engine)
    added, token = registry.add("Short-lived auditor")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{stack.url}/audit/verify", headers=headers).status_code == 200
    registry.revoke(added.auditor_id)
    refused = httpx.get(f"{stack.url}/audit/verify", headers=headers)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
