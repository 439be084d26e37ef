"""Bring a database to the current schema (`alembic upgrade head`) from code.

Safe to call at every start of every process: upgrading an up-to-date database does nothing,
and concurrent callers queue on a lock (a PostgreSQL advisory lock; SQLite's write lock)
instead of racing to create the same tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

from sharelock.db.engine import WRITE_LOCK, create_engine_for, describe_url
from sharelock.db.errors import DatabaseUnavailable, database_errors

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported inside the functions: processes that only read and write rows (every
# web worker, the audit writers) do not pay for loading it.

SCRIPT_LOCATION = "sharelock.db:migrations"
# Arbitrary, fixed: the key of the PostgreSQL advisory lock that serialises migrations.
_ADVISORY_LOCK_KEY = 0x5348_4C4B_0001
_MIGRATION_LOCK_TIMEOUT = "120s"


def alembic_config() -> Config:
    """Alembic's configuration without an ini file: the scripts ship inside the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def migrate(engine_or_url: Engine | str | URL) -> None:
    """`alembic upgrade head` on this database. Raises `DatabaseUnavailable` if it cannot."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    own = not isinstance(engine_or_url, Engine)
    engine = (
        engine_or_url if isinstance(engine_or_url, Engine) else create_engine_for(engine_or_url)
    )
    config = alembic_config()
    try:
        with (
            database_errors(
                DatabaseUnavailable,
                f"cannot migrate the database at {describe_url(engine.url)}",
                connection_detail=True,
            ),
            engine.connect() as connection,
        ):
            connection.execution_options(**{WRITE_LOCK: True})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # Schema changes may take longer than the engine's per-statement limits.
                    connection.execute(text("SET LOCAL statement_timeout = 0"))
                    connection.execute(
                        text(f"SET LOCAL lock_timeout = '{_MIGRATION_LOCK_TIMEOUT}'")
                    )
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                    )
                if MigrationContext.configure(connection).get_current_revision() != (
                    head_revision()
                ):
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
    finally:
        if own:
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with (
        database_errors(
            DatabaseUnavailable,
            f"cannot read the schema revision at {describe_url(engine.url)}",
            connection_detail=True,
        ),
        engine.connect() as connection,
    ):
        return MigrationContext.configure(connection).get_current_revision()
