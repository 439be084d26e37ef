"""The one translation of database errors (`sharelock.db.errors.database_errors`) and the one
crossing from async code to database threads (`sharelock.blocking.run_blocking`)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from sharelock import blocking
from sharelock.audit import AuditEvent, AuditTrail, AuditUnavailable, DuplicateDelivery, EventType
from sharelock.auditors import AuditorRegistry, AuditorsUnavailable
from sharelock.blocking import run_blocking
from sharelock.db import DatabaseUnavailable, create_engine_for, database_errors, migrate
from sharelock.errors import ServiceUnavailable
from sharelock.registry import PartnerRegistry, RegistryUnavailable

# A value a statement may carry (a person's e-mail): no message may ever quote it.
PERSONAL = "alice.martin@example.org"


@pytest.fixture
def bare_engine(tmp_path: Path) -> Iterator[Engine]:
    """A real SQLite database without Sharelock's tables (never migrated)."""
    engine = create_engine_for(f"sqlite:///{tmp_path / 'bare.db'}")
    yield engine
    engine.dispose()


# -- database_errors ------------------------------------------------------------------------


def test_missing_table_names_the_operation_and_the_class_only(bare_engine: Engine) -> None:
    with (
        pytest.raises(AuditUnavailable) as caught,
        database_errors(AuditUnavailable, "audit trail unavailable"),
        bare_engine.connect() as connection,
    ):
        connection.execute(text("SELECT id FROM audit_events WHERE email = :v"), {"v": PERSONAL})
    assert str(caught.value) == "audit trail unavailable: OperationalError"
    assert isinstance(caught.value, ServiceUnavailable)  # 503, fail closed
    # The SQLAlchemy error stays the cause, for a developer's traceback.
    assert isinstance(caught.value.__cause__, OperationalError)


def test_constraint_violation_never_quotes_the_value(bare_engine: Engine) -> None:
    with bare_engine.begin() as connection:
        connection.execute(text("CREATE TABLE people (email TEXT UNIQUE)"))
        connection.execute(text("INSERT INTO people VALUES (:v)"), {"v": PERSONAL})
    for detail in (False, True):  # not a connection-level failure: never any driver text
        with (
            pytest.raises(RegistryUnavailable) as caught,
            database_errors(RegistryUnavailable, "cannot store", connection_detail=detail),
            bare_engine.begin() as connection,
        ):
            connection.execute(text("INSERT INTO people VALUES (:v)"), {"v": PERSONAL})
        assert str(caught.value) == "cannot store: IntegrityError"
        assert PERSONAL not in str(caught.value)


def test_connection_detail_adds_the_drivers_first_line_for_connection_failures(
    tmp_path: Path,
) -> None:
    # A directory where the database file should be: SQLite cannot open it.
    (tmp_path / "not-a-file.db").mkdir()
    engine = create_engine_for(f"sqlite:///{tmp_path / 'not-a-file.db'}")
    try:
        with (
            pytest.raises(DatabaseUnavailable) as plain,
            database_errors(DatabaseUnavailable, "cannot read"),
            engine.connect(),
        ):
            pass
        assert str(plain.value) == "cannot read: OperationalError"
        with (
            pytest.raises(DatabaseUnavailable) as detailed,
            database_errors(DatabaseUnavailable, "cannot read", connection_detail=True),
            engine.connect(),
        ):
            pass
        assert str(detailed.value) == "cannot read: OperationalError (unable to open database file)"
    finally:
        engine.dispose()


def test_errors_raised_on_purpose_pass_through(bare_engine: Engine) -> None:
    refused = DuplicateDelivery("this delivery was already recorded")
    with (
        pytest.raises(DuplicateDelivery) as caught,
        database_errors(AuditUnavailable, "audit trail unavailable"),
    ):
        raise refused
    assert caught.value is refused
    with database_errors(AuditUnavailable, "audit trail unavailable"):
        pass  # nothing raised, nothing to translate


def test_the_packages_translate_through_it(bare_engine: Engine) -> None:
    """The registries and the trail on a database without their tables: each raises its own
    `ServiceUnavailable`, naming the operation and the class, never a value it was given."""
    with pytest.raises(RegistryUnavailable) as partner:
        PartnerRegistry(bare_engine).authenticate("sl_" + "x" * 20, PERSONAL)
    assert str(partner.value) == "cannot read the partner registry: OperationalError"
    with pytest.raises(AuditorsUnavailable) as auditors:
        AuditorRegistry(bare_engine).authenticate("sla_" + PERSONAL)
    assert str(auditors.value).startswith("cannot read auditors: OperationalError")
    assert PERSONAL not in str(auditors.value)
    with pytest.raises(AuditUnavailable) as audit:
        AuditTrail(bare_engine).record(AuditEvent(EventType.FLOW_STARTED))
    assert str(audit.value).startswith("audit trail unavailable: OperationalError")


def _refused_by_index(constraint: str) -> IntegrityError:
    """What the unique index's refusal looks like when it comes from SQLite."""
    orig = sqlite3.IntegrityError(f"UNIQUE constraint failed: {constraint}")
    return IntegrityError("INSERT INTO audit_events ...", {}, orig)


def test_the_delivery_key_index_still_means_duplicate(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The unique index on `delivery_key` refusing a row (a writer that got past the check
    in `_append`) is a duplicate delivery, not a failure; any other refusal is a failure."""
    trail = AuditTrail(engine)
    event = AuditEvent(EventType.FLOW_STARTED)

    def refuse(refusal: IntegrityError) -> None:
        def append(*_: object) -> int:
            raise refusal

        monkeypatch.setattr(trail, "_append", append)

    refuse(_refused_by_index("audit_events.delivery_key"))
    with pytest.raises(DuplicateDelivery):
        trail.record(event)
    refuse(_refused_by_index("audit_events.id"))
    with caplog.at_level(logging.WARNING), pytest.raises(AuditUnavailable) as caught:
        trail.record(event)
    assert str(caught.value) == "audit trail unavailable: IntegrityError"
    assert "audit trail unavailable: IntegrityError" in caplog.text


def test_migrate_names_the_database_without_its_secrets(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(DatabaseUnavailable) as caught:
        migrate(f"sqlite:///{tmp_path / 'dir.db'}")
    assert str(caught.value) == (
        f"cannot migrate the database at sqlite:///{tmp_path / 'dir.db'}: "
        "OperationalError (unable to open database file)"
    )


# -- run_blocking ---------------------------------------------------------------------------


async def test_run_blocking_runs_on_the_database_pool() -> None:
    def where(prefix: str, *, suffix: str) -> str:
        return f"{prefix}{threading.current_thread().name}{suffix}"

    name = await run_blocking(where, "<", suffix=">")
    assert name.startswith("<" + blocking.THREAD_NAME_PREFIX) and name.endswith(">")
    # Not the loop's default executor, which `asyncio.to_thread` shares with everyone.
    assert not (await asyncio.to_thread(where, "", suffix="")).startswith(
        blocking.THREAD_NAME_PREFIX
    )


async def test_run_blocking_raises_the_calls_exception() -> None:
    failure = AuditUnavailable("audit trail unavailable: OperationalError")

    def fail() -> None:
        raise failure

    with pytest.raises(AuditUnavailable) as caught:
        await run_blocking(fail)
    assert caught.value is failure


async def test_run_blocking_carries_context_variables() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    request_id.set("req-1")
    assert await run_blocking(request_id.get) == "req-1"


async def test_run_blocking_is_bounded() -> None:
    names: set[str] = set()

    def busy() -> None:
        names.add(threading.current_thread().name)
        time.sleep(0.02)

    await asyncio.gather(*(run_blocking(busy) for _ in range(3 * blocking.DEFAULT_WORKERS)))
    assert 1 < len(names) <= blocking.DEFAULT_WORKERS


async def test_shutdown_lets_work_finish_and_a_later_call_starts_a_new_pool() -> None:
    def slow() -> str:
        time.sleep(0.05)
        return "done"

    pending = asyncio.ensure_future(run_blocking(slow))
    await asyncio.sleep(0.01)  # submitted
    blocking.shutdown()  # waits for it, cancels nothing
    assert await pending == "done"
    assert await run_blocking(lambda: "again") == "again"


async def test_database_failures_cross_as_the_package_error(bare_engine: Engine) -> None:
    with pytest.raises(RegistryUnavailable) as caught:
        await run_blocking(PartnerRegistry(bare_engine).get, "sl_unknown")
    assert not isinstance(caught.value, SQLAlchemyError)
    assert str(caught.value) == "cannot read the partner registry: OperationalError"
