"""The share flow end to end, through real HTTP, Redis, SQLite, SoftHSM and the sandbox."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, text

from sharelock.audit import AuditTrail, search
from sharelock.config import Retention
from sharelock.db import create_engine_for
from sharelock.flow import AsyncAudit, expiry, flow_ref
from sharelock.keys import KeyLayer
from sharelock.store import SealedStore
from tests.support.broker import Share, Stack, StackFactory
from tests.support.redis_server import RedisServer

# A code that lives 1 s, so that a real wait longer than its life proves when it was issued
# (the wait only has to be longer, which no busy machine can make it not be).
CODE_LIFE = timedelta(seconds=1)
LONGER_THAN_A_CODE = 1.6


def test_bank_share_delivers_once(stack: Stack) -> None:
    share = Share(stack)
    received = share.complete()
    assert received["data_source"] == "sandbox-bank"
    assert received["data"]["bank_account"]["iban"] == "FR7699990000010001234567834"
    assert received["data"]["identity"]["given_name"] == "Alice"


def test_the_code_is_issued_when_the_person_continues(
    make_stack: StackFactory, redis_server: RedisServer, sandbox_url: str
) -> None:
    """The person may read and download the receipt for longer than a code lives: the code
    is issued when they continue, so the share still completes (issue 13); and a code then
    left unused for longer than its life is refused, so the wait was real."""
    retention = Retention(authorization_code=CODE_LIFE)
    with make_stack(
        redis_url=redis_server.url, sandbox_url=sandbox_url, retention=retention
    ) as stack:
        share = Share(stack)
        share.collect()
        decision = share.decide(True)
        assert decision.status_code == 200, decision.text
        time.sleep(LONGER_THAN_A_CODE)  # reading the receipt
        code = share.continue_to_partner(decision.json()["redirect_to"])
        # Continue again (a second click, the back button): no second code.
        again = share.browser.get(decision.json()["redirect_to"])
        assert again.status_code == 409
        assert "location" not in again.headers
        token = share.exchange(code)
        assert token.status_code == 200, token.text
        assert share.fetch(token.json()["access_token"]).status_code == 200

        late = Share(stack)
        late.collect()
        code = late.approve_and_get_code()
        time.sleep(LONGER_THAN_A_CODE)
        refused = late.exchange(code)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("data_source", "login", "password", "scope", "expected"),
    [
        ("sandbox-telecom", "carol", "carol-pass", "identity phone", ("phone", "phone_number")),
        ("sandbox-energy", "erin", "erin-pass", "address", ("address", "city")),
        (
            "sandbox-tax",
            "1234567890123",
            "tax-pass",
            "identity tax_notice",
            ("tax_notice", "reference_income"),
        ),
    ],
)
def test_every_source_shares(
    stack: Stack,
    data_source: str,
    login: str,
    password: str,
    scope: str,
    expected: tuple[str, str],
) -> None:
    received = Share(stack, scope=scope).complete(
        login=login, password=password, data_source=data_source
    )
    assert received["data_source"] == data_source
    assert set(received["data"]) == set(scope.split())
    assert received["data"][expected[0]][expected[1]]


def test_metrics_count_by_route_template_and_leak_nothing(stack: Stack) -> None:
    share = Share(stack)
    received = share.complete()
    assert stack.broker.operator_url is not None
    response = httpx.get(stack.broker.operator_url + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'method="GET",route="/v1/share",status="200"' in text
    assert 'route="/api/flows/{flow_id}/credentials"' in text
    assert "sharelock_hsm_operations_total" in text
    for secret in (
        share.flow_id,
        stack.partner.client_id,
        "alice",
        "Martin",
        received["data"]["bank_account"]["iban"],
    ):
        assert secret not in text


def test_metrics_are_on_the_operator_listener_only(stack: Stack) -> None:
    """Per-route volumes are for the operator: the partner-facing listener does not have
    `/metrics` at all, and the probes answer on both listeners."""
    public = httpx.get(stack.url + "/metrics", timeout=10)
    assert public.status_code == 404
    assert public.json()["error"] == "not_found"
    assert stack.broker.operator_url is not None
    for base in (stack.url, stack.broker.operator_url):
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200
        assert httpx.get(base + "/readyz", timeout=10).status_code == 200
    # The operator listener has nothing else: no partner endpoint, no consent screen.
    assert httpx.get(stack.broker.operator_url + "/authorize", timeout=10).status_code == 404


def test_readiness_reports_every_backing_service(stack: Stack) -> None:
    ready = httpx.get(stack.url + "/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"hsm": "ok", "redis": "ok", "database": "ok"}


async def test_expired_flows_get_a_data_expired_row(
    stack: Stack, redis_server: RedisServer, key_layer: KeyLayer
) -> None:
    """Abandoned flows leave Redis at the cap; the sweep records each once, delivered and
    refused flows never."""
    abandoned, refused, delivered = Share(stack), Share(stack), Share(stack)
    abandoned.start()
    refused.collect()
    assert refused.decide(False).status_code == 200
    delivered.complete()

    engine = create_engine_for(stack.settings)
    store = SealedStore.from_url(redis_server.url, key_layer, stack.settings.retention)
    try:
        audit = AsyncAudit(AuditTrail(engine))
        later = datetime.now(UTC) + stack.settings.retention.session + timedelta(seconds=1)
        before = _count(engine, "data_expired")
        swept = await expiry.sweep(store, audit, now=later)
        assert swept >= 1
        assert await expiry.sweep(store, audit, now=later) == 0  # each flow once
        rows = search(engine, client_id=stack.partner.client_id, limit=1000)
        expired_refs = {r.flow_ref for r in rows if r.event == "data_expired"}
        assert _count(engine, "data_expired") == before + swept
        assert flow_ref(abandoned.flow_id) in expired_refs
        assert flow_ref(refused.flow_id) not in expired_refs
        assert flow_ref(delivered.flow_id) not in expired_refs
    finally:
        await store.aclose()
        engine.dispose()


def _count(engine: Engine, event: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT COUNT(*) FROM audit_events WHERE event = :e"), {"e": event}
            ).scalar_one()
        )


def test_the_partner_learns_the_share_reference_at_par(stack: Stack) -> None:
    """The PAR answer names the share as the audit trail and webhook events will
    (`flow_ref`, a digest: the flow id itself stays secret); the delivery repeats it."""
    share = Share(stack)
    pushed = share.push()
    assert pushed.status_code == 201, pushed.text
    reference = pushed.json()["flow_ref"]
    share.authorize_pushed(pushed.json()["request_uri"])
    assert reference == flow_ref(share.flow_id) and share.flow_id not in pushed.text
    share.collect_started()
    token = share.exchange(share.approve_and_get_code())
    assert share.fetch(token.json()["access_token"]).json()["flow_ref"] == reference
    started = stack.audit_rows("flow_started", flow_id=share.flow_id)
    assert [row.flow_ref for row in started] == [reference]
