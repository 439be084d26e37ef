"""Databases to run the SQL tests on: a fresh SQLite file always, and PostgreSQL when
`SHARELOCK_TEST_POSTGRES_URL` names a server (CI sets it).

When the variable is unset the PostgreSQL case is left out of the parameter list, rather than
skipped or faked, so a run without it plainly tests SQLite only. Each PostgreSQL database is a
schema of its own (through `search_path` in the URL), dropped afterwards: tests are hermetic
and can run in parallel against one server.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from sharelock.db import normalise_url

POSTGRES_ENV = "SHARELOCK_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def backends() -> list[str]:
    """Parameter list for `pytest.fixture(params=...)`: "sqlite", plus "postgresql" if set."""
    return ["sqlite", "postgresql"] if postgres_url() else ["sqlite"]


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of this kind, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'sharelock-test.db'}"
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    with postgres_schema() as url:
        yield url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections work in a new, empty schema of the test server."""
    base = postgres_url()
    if base is None:
        raise RuntimeError(f"{POSTGRES_ENV} is not set")
    schema = "sl_test_" + secrets.token_hex(6)
    admin = create_engine(normalise_url(base), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = normalise_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def unreachable_postgres_url() -> str:
    """A PostgreSQL URL on a loopback port where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/sharelock"
