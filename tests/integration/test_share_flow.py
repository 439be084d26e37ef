"""The share flow end to end, through real HTTP, Redis, SQLite, SoftHSM and the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
