"""`GET /v1/share`: the data leaves once (SECURITY-CHECKLIST C 34, 36; D 46 as concurrency), what
Redis keeps afterwards, and the audit rows of a delivery and of every refused second try."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from sharelock.flow import flow_ref
from sharelock.flow.records import (
    CODE_USED,
    COLLECTED,
    FLOW,
    IDENTITY,
    RELEASE,
    RESUME,
)
from sharelock.oauth.tokens import digest
from tests.support.broker import (
    Share,
    Stack,
    code_key,
    flow_keys,
    record_key,
    token_key,
)

IDENTITY_TTL_MS = 72 * 3600 * 1000


def token_for(stack: Stack, **collect: str) -> tuple[Share, str, str]:
    scope = collect.pop("scope", "identity address bank_account")
    flow = Share(stack, scope=scope)
    flow.collect(**collect)
    code = flow.approve_and_get_code()
    response = flow.exchange(code)
    assert response.status_code == 200, response.text
    return flow, code, response.json()["access_token"]


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert "data" not in response.json()
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["cache-control"] == "no-store"


def test_second_fetch_is_refused_and_recorded(stack: Stack) -> None:
    flow, _, token = token_for(stack)
    first = flow.fetch(token)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == "no-store"
    assert first.json()["data"]["identity"]["family_name"] == "Martin"

    assert_invalid_token(flow.fetch(token))
    assert_invalid_token(flow.fetch(token))

    delivered = stack.audit_rows("data_delivered", flow_id=flow.flow_id)
    assert len(delivered) == 1
    assert delivered[0].delivery_key == digest(token)
    conflicts = stack.audit_rows("delivery_conflict", flow_id=flow.flow_id)
    assert len(conflicts) == 2
    for row in conflicts:
        assert row.client_id == flow.client_id
        assert row.login_hash == delivered[0].login_hash
        assert row.data_source == "sandbox-bank"


def test_after_delivery_release_token_and_code_are_gone(stack: Stack) -> None:
    flow, code, token = token_for(stack)
    with stack.raw_redis() as raw:
        assert raw.exists(record_key(RELEASE, flow_ref(flow.flow_id))) == 1
        assert raw.exists(token_key(token)) == 1
        assert raw.exists(code_key(code)) == 0  # taken by the exchange already
        assert flow.fetch(token).status_code == 200
        for key in (
            record_key(RELEASE, flow_ref(flow.flow_id)),
            token_key(token),
            code_key(code),
            record_key(FLOW, flow.flow_id),
            record_key(COLLECTED, flow.flow_id),
            record_key(RESUME, flow.flow_id),
        ):
            assert raw.exists(key) == 0, key
        # What is left of the flow: the sealed identity kept for identity verification only.
        assert set(flow_keys(raw, flow.flow_id)) == {record_key(IDENTITY, flow_ref(flow.flow_id))}


def test_identity_data_is_kept_72_hours_at_most(stack: Stack) -> None:
    flow, _, token = token_for(stack)
    assert flow.fetch(token).status_code == 200
    with stack.raw_redis() as raw:
        ttl = int(raw.pttl(record_key(IDENTITY, flow_ref(flow.flow_id))))
        value = raw.get(record_key(IDENTITY, flow_ref(flow.flow_id)))
    assert IDENTITY_TTL_MS - 60_000 < ttl <= IDENTITY_TTL_MS
    assert value is not None and b"Martin" not in value and b"Alice" not in value


def test_identity_kept_only_for_a_partner_that_verifies_identity(stack: Stack) -> None:
    """The 72 h copy exists only where the partner's declared purpose is identity
    verification, and the request step says so, with its duration (issue 13)."""
    verifier = Share(stack)  # the stack's partners are registered with identity verification
    shop = Share(stack, partner=stack.add_partner("Plain Shop", identity_verification=False))
    for share, kept in ((verifier, True), (shop, False)):
        assert share.start().status_code == 303
        page = share.browser.get(f"/consent/{share.flow_id}", params={"lang": "en"})
        assert page.status_code == 200
        assert ('id="retention-identity"' in page.text) is kept
        assert ("72 hours" in page.text) is kept
        share.collect_started()
        token = share.exchange(share.approve_and_get_code())
        assert token.status_code == 200, token.text
        received = share.fetch(token.json()["access_token"])
        assert received.json()["data"]["identity"]["family_name"] == "Martin"
        with stack.raw_redis() as raw:
            assert raw.exists(record_key(IDENTITY, flow_ref(share.flow_id))) == int(kept)


def test_no_identity_kept_when_none_was_shared(stack: Stack) -> None:
    flow, _, token = token_for(
        stack, scope="address", login="erin", password="erin-pass", data_source="sandbox-energy"
    )
    assert flow.fetch(token).json()["data"]["address"]["city"]
    with stack.raw_redis() as raw:
        assert flow_keys(raw, flow.flow_id) == {}


@pytest.mark.parametrize("parallel", [2, 10])
def test_concurrent_fetches_deliver_once(stack: Stack, parallel: int) -> None:
    flow, _, token = token_for(stack)
    barrier = threading.Barrier(parallel)

    def fetch(_: int) -> httpx.Response:
        barrier.wait(timeout=30)
        return flow.fetch(token)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        responses = list(pool.map(fetch, range(parallel)))

    ok = [r for r in responses if r.status_code == 200]
    assert len(ok) == 1, [r.status_code for r in responses]
    assert ok[0].json()["data"]["bank_account"]["iban"] == "FR7699990000010001234567834"
    for response in responses:
        if response is not ok[0]:
            assert_invalid_token(response)
    assert len(stack.audit_rows("data_delivered", flow_id=flow.flow_id)) == 1
    assert len(stack.audit_rows("delivery_conflict", flow_id=flow.flow_id)) == parallel - 1


def test_a_failover_that_brings_the_token_back_cannot_deliver_twice(stack: Stack) -> None:
    """Redis replicates asynchronously: a primary that dies right after erasing a delivered
    token may leave a replica that still holds it and its release. The database's unique
    row, not Redis, decides the one delivery (issue 12)."""
    flow, _, token = token_for(stack)
    keys = [
        token_key(token),
        record_key(RELEASE, flow_ref(flow.flow_id)),
        record_key(FLOW, flow.flow_id),
    ]
    with stack.raw_redis() as raw:
        before = {key: (raw.dump(key), raw.pttl(key)) for key in keys}
    assert all(dumped is not None for dumped, _ in before.values())
    assert flow.fetch(token).status_code == 200

    with stack.raw_redis() as raw:
        assert raw.exists(*keys) == 0
        for key, (dumped, ttl) in before.items():  # what the promoted replica still held
            raw.restore(key, max(ttl, 1000), dumped)
    again = flow.fetch(token)
    assert_invalid_token(again)
    assert len(stack.audit_rows("data_delivered", flow_id=flow.flow_id)) == 1
    assert len(stack.audit_rows("delivery_conflict", flow_id=flow.flow_id)) == 1


def test_token_must_come_as_a_bearer_header(stack: Stack) -> None:
    flow, _, token = token_for(stack)
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        for header in ({}, {"Authorization": f"Basic {token}"}, {"Authorization": "Bearer"}):
            assert_invalid_token(client.get("/v1/share", headers=header))
        in_body = client.request(
            "GET",
            "/v1/share",
            content=f"access_token={token}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert_invalid_token(in_body)
    # None of this used the token up.
    assert flow.fetch(token).status_code == 200
    # In the query string it is refused, and revoked as leaked (test_oauth_strictness.py).
    flow, _, token = token_for(stack)
    in_query = httpx.get(f"{stack.url}/v1/share", params={"access_token": token}, timeout=30)
    assert in_query.status_code == 400
    assert in_query.json()["error"] == "invalid_request"
    assert_invalid_token(flow.fetch(token))


def test_unknown_tokens_leave_no_conflict_rows(stack: Stack) -> None:
    flow = Share(stack)
    before = len(stack.audit_rows("delivery_conflict"))
    for token in (secrets.token_urlsafe(32), "x", "a" * 2000):
        assert_invalid_token(flow.fetch(token))
    assert len(stack.audit_rows("delivery_conflict")) == before


# -- round trips: what each step leaves to its script (issue 11) -----------------------------


@contextmanager
def redis_commands(stack: Stack) -> Iterator[list[dict[str, Any]]]:
    """What Redis runs during the block, seen by MONITOR: each command with its client type,
    `lua` for those a script runs (they cost no round trip). Read up to a marker sent after the
    block: nothing is waited for by time."""
    seen: list[dict[str, Any]] = []
    marker = f"end-{secrets.token_hex(8)}"
    with stack.raw_redis() as raw, raw.monitor() as monitor:
        yield seen
        raw.echo(marker)
        while (command := monitor.next_command())["command"] != f"ECHO {marker}":
            seen.append(command)


def sent_naming(commands: list[dict[str, Any]], *keys: str) -> list[str]:
    """The commands the broker sent (not those its scripts ran) that name all of `keys`."""
    return [
        c["command"].split(" ")[0].upper()
        for c in commands
        if c["client_type"] != "lua" and all(key in c["command"] for key in keys)
    ]


def test_each_step_writes_its_records_in_one_script(stack: Stack) -> None:
    """The release and the collected data's erasure go with the decision's transition, the code
    with the Continue's; the token with the code's use. Each is one script the broker sends, not
    a command per record; the delivery reads the token and the release, then hands them over in
    one script."""
    warm, _, token = token_for(stack)  # every script loaded (a first EVALSHA may be refused)
    assert warm.fetch(token).status_code == 200
    flow = Share(stack)
    flow.collect()
    flow_key = record_key(FLOW, flow.flow_id)
    release = record_key(RELEASE, flow_ref(flow.flow_id))
    collected = record_key(COLLECTED, flow.flow_id)

    with redis_commands(stack) as decision:
        decided = flow.decide(True)
    assert decided.status_code == 200, decided.text
    assert sent_naming(decision, release) == ["EVALSHA"]
    assert sent_naming(decision, release, collected, flow_key) == ["EVALSHA"]
    assert sent_naming(decision, collected) == ["GET", "EVALSHA"]  # read for the review

    with redis_commands(stack) as leaving:
        code = flow.continue_to_partner(decided.json()["redirect_to"])
    assert sent_naming(leaving, code_key(code)) == ["EVALSHA"]
    assert sent_naming(leaving, code_key(code), flow_key) == ["EVALSHA"]

    with redis_commands(stack) as exchange:
        issued = flow.exchange(code)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    used = record_key(CODE_USED, digest(code))
    assert sent_naming(exchange, token_key(token)) == ["EVALSHA"]
    assert sent_naming(exchange, token_key(token), used) == ["EVALSHA"]

    with redis_commands(stack) as delivery:
        fetched = flow.fetch(token)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["data"]["identity"]["family_name"] == "Martin"
    assert sent_naming(delivery, release) == ["GET", "EVALSHA"]
    assert sent_naming(delivery, token_key(token)) == ["GET", "EVALSHA"]
    assert sent_naming(delivery, token_key(token), release, flow_key) == ["EVALSHA"]
    with stack.raw_redis() as raw:
        assert raw.exists(release, token_key(token), flow_key, collected) == 0
