"""Alembic environment for Sharelock.

`sharelock.db.migrate()` hands over an open connection (already inside a transaction that
holds the migration lock) in `config.attributes["connection"]`. Run from the `alembic` command
instead (`alembic -c src/sharelock/db/alembic.ini …`, for developers writing a revision), the
database comes from the Sharelock settings, i.e. `SHARELOCK_DATABASE_URL` or the embedded
SQLite file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from sharelock.config import load_settings
from sharelock.db.engine import create_engine_for
from sharelock.db.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    engine = create_engine_for(load_settings())
    try:
        with engine.begin() as own:
            _run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Sharelock migrations run online only (they need the database)")
run_migrations_online()
