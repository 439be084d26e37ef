"""Shared fixtures: a real SoftHSM2 token initialised by the project's own code."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from sharelock.config import Limits, Settings
from sharelock.db import create_engine_for, migrate
from sharelock.keys import KeyLayer, init_token
from tests.support.broker import Stack, StackFactory
from tests.support.databases import backends, fresh_database
from tests.support.redis_server import RedisServer
from tests.support.sandbox import serve_sandbox

TOKEN_LABEL = "sharelock-test"


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


# Every test module shares one Redis and one client address (127.0.0.1), so the production
# limits would make tests depend on each other (a wrong password in one module would lock
# alice out in the next). They are set out of reach here; `test_rate_limits.py` proves each
# limit on a private Redis with small values.
OUT_OF_REACH = Limits(
    per_address="100000/minute",
    failed_auth_per_address="100000/minute",
    par_per_partner="100000/minute",
    token_per_partner="100000/minute",
    wrong_passwords_per_flow="100000/hour",
    wrong_passwords_per_login="100000/hour",
    rights_per_address="100000/hour",
    auditor_lookups="100000/hour",
)


@pytest.fixture(scope="session")
def settings(state_dir: Path) -> Settings:
    # partner_cache_seconds=0: tests change partners in the database (disable, rotate) and
    # expect the running broker to see it at once; the cache has its own test.
    # webhook_enabled=False: brokers of different test databases share one Redis, and so one
    # webhook cursor; tests/integration/test_webhooks.py runs the webhooks on Redis of its own.
    return Settings(
        state_dir=state_dir,
        hsm_token_label=TOKEN_LABEL,
        limits=OUT_OF_REACH,
        partner_cache_seconds=0,
        webhook_enabled=False,
    )


@pytest.fixture(scope="session")
def key_layer(settings: Settings) -> Iterator[KeyLayer]:
    init_token(settings)
    layer = KeyLayer(settings)
    layer.ensure_keys()
    yield layer
    layer.close()


@pytest.fixture(scope="session")
def enc_jwk(key_layer: KeyLayer) -> dict[str, Any]:
    """The broker's active public encryption key, as published."""
    jwk: dict[str, Any] = key_layer.jwks()["keys"][0]
    return jwk


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every log record of every logger at DEBUG, for leak checks."""
    caplog.set_level(logging.DEBUG)
    yield caplog


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, for the whole session. Tests that kill,
    pause or fill Redis start their own."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """The sandbox data sources over real HTTP."""
    with serve_sandbox() as url:
        yield url


@pytest.fixture(scope="session")
def make_stack(
    settings: Settings, key_layer: KeyLayer, tmp_path_factory: pytest.TempPathFactory
) -> StackFactory:
    """Builds brokers like `stack`, for a module (or a test) whose broker has its own Redis,
    sandbox, database or settings:

        with make_stack(redis_url=own.url, sandbox_url=sandbox.url, retention=SHORT) as stack:
    """
    return StackFactory(settings, key_layer, lambda: tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory, redis_server: RedisServer, sandbox_url: str) -> Iterator[Stack]:
    """A whole broker over real HTTP (Redis, SQLite, SoftHSM, the sandbox) with two registered
    partners, shared by the tests of one module. Tests that break or reconfigure a part build
    their own with `make_stack`."""
    with make_stack(redis_url=redis_server.url, sandbox_url=sandbox_url) as running:
        yield running


@pytest.fixture(params=backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh SQL database per test: SQLite always, PostgreSQL too when
    SHARELOCK_TEST_POSTGRES_URL is set (CI sets it)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The migrated database of `database_url` (a module may override `database_url`)."""
    engine = create_engine_for(database_url)
    migrate(engine)
    yield engine
    engine.dispose()
