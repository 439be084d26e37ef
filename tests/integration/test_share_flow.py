"""The share flow end to end, through real HTTP, Redis, SQLite, SoftHSM and the sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sharelock.config import Settings
from sharelock.keys import KeyLayer
from tests.support.broker import Share, Stack, broker_stack, sqlite_url
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="module")
def stack(
    settings: Settings,
    key_layer: KeyLayer,
    redis_server: RedisServer,
    sandbox_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    with broker_stack(
        settings,
        key_layer,
        redis_url=redis_server.url,
        sandbox_url=sandbox_url,
        database_url=sqlite_url(tmp_path_factory.mktemp("db")),
    ) as running:
        yield running


def test_bank_share_delivers_once(stack: Stack) -> None:
    share = Share(stack)
    received = share.complete()
    assert received["data_source"] == "sandbox-bank"
    assert received["data"]["bank_account"]["iban"] == "FR7699990000010001234567834"
    assert received["data"]["identity"]["given_name"] == "Alice"


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
    text = httpx.get(stack.url + "/metrics", timeout=10).text
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


def test_readiness_reports_every_backing_service(stack: Stack) -> None:
    ready = httpx.get(stack.url + "/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"hsm": "ok", "redis": "ok", "database": "ok"}
