"""One way to get an engine, so every process talks to the database the same way.

The engine is synchronous: the web layer calls the registry and the audit trail on a thread.

SQLite (the embedded default) gets WAL, so readers do not block the writer, and a busy
timeout, so concurrent writers wait instead of failing. Python's sqlite3 module opens
transactions lazily and on its own terms; here it is told to keep out of the way and the
engine emits `BEGIN` itself, or `BEGIN IMMEDIATE` for connections that ask for it with the
`WRITE_LOCK` execution option. The audit trail uses that: taking the write lock at the start
of the transaction is what serialises chain appends across processes on SQLite.

PostgreSQL goes through psycopg 3, with a connect timeout and a lock timeout so that a dead
or stuck server makes callers fail closed quickly instead of hanging.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from sharelock.config import Settings
from sharelock.errors import ConfigError

log = logging.getLogger(__name__)

# Execution option: begin this connection's transactions by taking the write lock (SQLite).
WRITE_LOCK = "sharelock_write_lock"

SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 5
POSTGRES_LOCK_TIMEOUT = "10s"
POSTGRES_STATEMENT_TIMEOUT = "30s"


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL; plain `postgresql://` and `postgres://` mean psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "SHARELOCK_DATABASE_URL: not a database URL "
            "(expected e.g. sqlite:///path/to/file.db or postgresql://user@host/db)"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"SHARELOCK_DATABASE_URL: unsupported database {parsed.get_backend_name()!r} "
            "(use sqlite or postgresql)"
        )
    return parsed


def describe_url(url: URL) -> str:
    """The URL for messages: never its password."""
    return url.render_as_string(hide_password=True)


def describe_failure(exc: Exception) -> str:
    """A one-line reason for an operator: the failure class, plus the driver's first line
    for connection-level errors (e.g. "Connection refused"), which name hosts and ports and
    never values. Other errors (constraint violations, …) may quote row values: class only."""
    reason = type(exc).__name__
    if isinstance(exc, OperationalError | InterfaceError) and exc.orig is not None:
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        if first:
            reason += f" ({first[:200]})"
    return reason


def create_engine_for(settings_or_url: Settings | str | URL, **kwargs: Any) -> Engine:
    """An engine for `settings.sqlalchemy_url` (or an explicit URL), configured as above."""
    raw = (
        settings_or_url.sqlalchemy_url if isinstance(settings_or_url, Settings) else settings_or_url
    )
    url = normalise_url(raw)
    options: dict[str, Any] = {"hide_parameters": True, **kwargs}
    try:
        if url.get_backend_name() == "sqlite":
            # A file on this machine: a pooled connection cannot have been dropped by a
            # server, so no ping (a `SELECT 1` before every use) is needed.
            _prepare_sqlite_path(url)
            engine = create_engine(url, **options)
            _configure_sqlite(engine)
        else:
            # A server may drop idle connections (restart, failover): ping before each use.
            options.setdefault("pool_pre_ping", True)
            connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
            connect_args.update(options.pop("connect_args", {}))
            engine = create_engine(url, connect_args=connect_args, **options)
            _configure_postgres(engine)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(
            f"SHARELOCK_DATABASE_URL: cannot use {describe_url(url)}: {type(exc).__name__}"
        ) from None
    return engine


def _prepare_sqlite_path(url: URL) -> None:
    """Create the directory of a file database (the embedded state dir may not exist yet)."""
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Stop pysqlite from issuing its own BEGIN; `_on_begin` does it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError:
                # A read-only database keeps its journal mode; writes will fail on their own.
                log.debug("could not switch SQLite to WAL (read-only database?)")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_LOCK, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _configure_postgres(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Session settings outside any transaction, so they stick for the connection's life.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute(f"SET lock_timeout = '{POSTGRES_LOCK_TIMEOUT}'")
                cursor.execute(f"SET statement_timeout = '{POSTGRES_STATEMENT_TIMEOUT}'")
        finally:
            dbapi_connection.autocommit = autocommit
