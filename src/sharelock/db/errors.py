"""Errors of the SQL layer, and the one place that turns SQLAlchemy's errors into Sharelock's.

Messages name the database kind and the failure class only: never a password from the URL,
and never a bound parameter (engines are built with `hide_parameters=True` for the same
reason).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError

from sharelock.db.engine import describe_failure
from sharelock.errors import ServiceUnavailable, SharelockError


class DatabaseError(SharelockError):
    """Base of the SQL layer's errors."""


class DatabaseUnavailable(DatabaseError, ServiceUnavailable):
    """The database cannot be reached, refused a statement, or is read-only."""


@contextmanager
def database_errors(
    error_type: type[ServiceUnavailable], doing: str, *, connection_detail: bool = False
) -> Iterator[None]:
    """Raise `error_type("<doing>: <failure class>")` for any SQLAlchemy error in the block.

    Every package's database failure goes through here, so the rule is kept in one place: the
    message names what was being done and the exception's class, never the driver's text,
    which can quote a bound value (a constraint violation on PostgreSQL prints the row's key),
    and a value may be personal. `error_type` is a `ServiceUnavailable`: the broker fails
    closed (503, mapped in `sharelock.web.errors`) on any database failure.

    `connection_detail` adds the driver's first line for connection-level failures only
    (`describe_failure`: "Connection refused", a lock timeout; hosts and ports, no values),
    where an operator reads the message to fix the database: migrations, the audit trail's
    writes and checkpoints, the auditors and the maintenance credentials (those messages
    carried it before they were translated here).

    The SQLAlchemy error stays chained as the cause (`from exc`): a developer's traceback
    shows the statement, whose parameters the engine hides; Sharelock's own log formatter and
    the command line print only the message (`sharelock.logs`, `sharelock.cli.main`).

    Only `SQLAlchemyError` is translated: both drivers report OS-level failures (a refused
    socket, an unreadable file) as DBAPI errors, which SQLAlchemy wraps as well, and an
    `OSError` from anything else in the block is not a database failure.

    Errors raised on purpose inside the block (Sharelock's own) pass through unchanged; a
    caller that must tell a specific database error apart (the audit trail's duplicate
    delivery key) catches it inside the block, before this translation."""
    try:
        yield
    except SQLAlchemyError as exc:
        reason = describe_failure(exc) if connection_detail else type(exc).__name__
        raise error_type(f"{doing}: {reason}") from exc
