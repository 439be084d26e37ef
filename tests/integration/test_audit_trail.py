"""The audit trail: hash-chained, pseudonymous rows that fail closed (SECURITY-CHECKLIST
cases 37, 38, 45, 46), on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.engine import make_url

from sharelock.audit import (
    AuditEvent,
    AuditTrail,
    AuditUnavailable,
    DuplicateDelivery,
    EventType,
    InvalidAuditEvent,
    login_hash,
    login_hash_input,
    search,
    verify_chain,
)
from sharelock.audit.chain import row_hash
from sharelock.db import AuditChainHead, AuditEventRow, create_engine_for
from sharelock.errors import ServiceUnavailable
from sharelock.keys import KeyLayer
from tests.support.databases import unreachable_postgres_url

LOGIN_HASH = "hmac-sha256:" + "ab" * 32
OTHER_HASH = "hmac-sha256:" + "cd" * 32


@pytest.fixture
def trail(engine: Engine) -> AuditTrail:
    return AuditTrail(engine)


def _event(n: int = 0, **overrides: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "event": EventType.COLLECTION_SUCCEEDED,
        "client_id": "sl_client",
        "data_source": "sandbox-bank",
        "login_hash": LOGIN_HASH,
        "flow_ref": f"flow-{n}",
        "browser_family": "firefox",
        "device_type": "desktop",
        "outcome": "ok",
    }
    fields.update(overrides)
    return AuditEvent(**fields)


def _fill(trail: AuditTrail, count: int = 5) -> list[int]:
    return [trail.record(_event(n)) for n in range(count)]


def _sql(engine: Engine, *statements: Any) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement) if isinstance(statement, str) else statement)


def _row(engine: Engine, row_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(select(AuditEventRow.__table__).where(AuditEventRow.id == row_id))
        return dict(row.mappings().one())


def _shift_ids(engine: Engine, after: int, by: int) -> None:
    """Renumber rows above `after`, one by one (highest first, so no id collides)."""
    with engine.connect() as connection:
        ids = connection.scalars(
            select(AuditEventRow.id).where(AuditEventRow.id > after).order_by(AuditEventRow.id)
        ).all()
    for row_id in sorted(ids, reverse=by > 0):
        _sql(engine, update(AuditEventRow).where(AuditEventRow.id == row_id).values(id=row_id + by))


def _forged(engine: Engine, row_id: int, prev_hash: str) -> Any:
    """A row with a self-consistent hash, as someone with write access could make."""
    fields = {**_event(99).columns(), "at": datetime.now(UTC)}
    return insert(AuditEventRow).values(
        id=row_id, prev_hash=prev_hash, row_hash=row_hash(fields, prev_hash), **fields
    )


# -- the chain ----------------------------------------------------------------------------


def test_rows_are_chained_and_verify(trail: AuditTrail, engine: Engine) -> None:
    before = datetime.now(UTC)
    assert _fill(trail) == [1, 2, 3, 4, 5]
    rows = search(engine)
    assert [r.id for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].prev_hash == "0" * 64
    for previous, row in itertools.pairwise(rows):
        assert row.prev_hash == previous.row_hash
        assert row.at >= previous.at
    assert rows[0].at.tzinfo is not None and before <= rows[0].at <= datetime.now(UTC)
    assert rows[0].event == "collection_succeeded" and rows[0].login_hash == LOGIN_HASH
    report = verify_chain(engine)
    assert report.ok and report.rows_checked == 5 and report.reason is None
    assert report.last_id == 5 and report.last_hash == rows[-1].row_hash


def test_empty_chain_verifies(engine: Engine) -> None:
    report = verify_chain(engine)
    assert report.ok and report.rows_checked == 0


@pytest.mark.parametrize(
    "column, value",
    [("outcome", "forged"), ("login_hash", OTHER_HASH), ("client_id", "sl_other")],
)
def test_verify_detects_an_altered_row(
    trail: AuditTrail, engine: Engine, column: str, value: str
) -> None:
    _fill(trail)
    _sql(engine, update(AuditEventRow).where(AuditEventRow.id == 3).values({column: value}))
    report = verify_chain(engine)
    assert (report.ok, report.first_bad_id, report.reason) == (False, 3, "altered")
    assert report.rows_checked == 2


def test_verify_detects_an_altered_time(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail)
    moved = _row(engine, 2)["at"] - timedelta(seconds=1)
    _sql(engine, update(AuditEventRow).where(AuditEventRow.id == 2).values(at=moved))
    assert verify_chain(engine).reason == "altered"


def test_verify_detects_a_deleted_row(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail)
    _sql(engine, "DELETE FROM audit_events WHERE id = 3")
    report = verify_chain(engine)
    assert (report.ok, report.first_bad_id, report.reason) == (False, 3, "deleted")


def test_verify_detects_a_deleted_and_renumbered_row(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail)
    _sql(
        engine,
        "DELETE FROM audit_events WHERE id = 3",
        update(AuditChainHead).values(last_id=4),
    )
    _shift_ids(engine, after=3, by=-1)
    report = verify_chain(engine)
    assert (report.first_bad_id, report.reason) == (3, "deleted")


def test_verify_detects_a_deleted_last_row(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail)
    _sql(engine, "DELETE FROM audit_events WHERE id = 5")
    report = verify_chain(engine)
    assert (report.ok, report.first_bad_id, report.reason) == (False, 5, "deleted")


def test_verify_detects_a_row_appended_behind_the_head(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail)
    _sql(engine, _forged(engine, 6, _row(engine, 5)["row_hash"]))
    report = verify_chain(engine)
    assert (report.ok, report.first_bad_id, report.reason) == (False, 6, "inserted")


@pytest.mark.parametrize("chained", [True, False])
def test_verify_detects_a_row_inserted_in_the_middle(
    trail: AuditTrail, engine: Engine, chained: bool
) -> None:
    _fill(trail)
    prev_hash = _row(engine, 3)["row_hash"] if chained else "f" * 64
    _shift_ids(engine, after=3, by=1)
    _sql(engine, _forged(engine, 4, prev_hash), update(AuditChainHead).values(last_id=6))
    report = verify_chain(engine)
    assert (report.ok, report.first_bad_id, report.reason) == (False, 4, "inserted")


def test_verify_detects_reordered_rows(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail)
    _sql(
        engine,
        "UPDATE audit_events SET id = 100 WHERE id = 2",
        "UPDATE audit_events SET id = 2 WHERE id = 3",
        "UPDATE audit_events SET id = 3 WHERE id = 100",
    )
    report = verify_chain(engine)
    assert (report.ok, report.first_bad_id, report.reason) == (False, 2, "reordered")


def test_retention_purge_keeps_the_rest_verifiable(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail)
    cutoff = _row(engine, 3)["at"]
    assert trail.purge(cutoff) == 2
    assert trail.purge(cutoff) == 0
    assert [r.id for r in search(engine)] == [3, 4, 5]
    report = verify_chain(engine)
    assert report.ok and report.rows_checked == 3
    assert trail.record(_event()) == 6
    assert verify_chain(engine).ok
    _sql(engine, "DELETE FROM audit_events WHERE id = 3")
    assert verify_chain(engine).reason == "deleted"


def test_concurrent_writers_keep_one_chain(database_url: str, engine: Engine) -> None:
    """4 processes x 25 appends: 100 rows, gap-free ids, one chain, no fork."""
    script = (
        "import sys\n"
        "from sharelock.audit import AuditEvent, AuditTrail\n"
        "from sharelock.db import create_engine_for\n"
        "trail = AuditTrail(create_engine_for(sys.argv[1]))\n"
        "for i in range(25):\n"
        "    trail.record(AuditEvent('flow_started', flow_ref=f'w{sys.argv[2]}-{i}'))\n"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, database_url, str(n)]) for n in range(4)
    ]
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0, 0]
    report = verify_chain(engine)
    assert report.ok and report.rows_checked == 100 and report.last_id == 100
    with engine.connect() as connection:
        forks = connection.execute(
            select(AuditEventRow.prev_hash)
            .group_by(AuditEventRow.prev_hash)
            .having(func.count() > 1)
        ).all()
        refs = connection.scalars(select(AuditEventRow.flow_ref)).all()
    assert forks == []
    assert sorted(r or "" for r in refs) == sorted(f"w{n}-{i}" for n in range(4) for i in range(25))


# -- one delivery per code (case 46) ------------------------------------------------------


def _delivered(key: str) -> AuditEvent:
    return _event(event=EventType.DATA_DELIVERED, delivery_key=key)


def test_duplicate_delivery_is_refused(trail: AuditTrail, engine: Engine) -> None:
    key = "a" * 64
    first = trail.record(_delivered(key))
    with pytest.raises(DuplicateDelivery):
        trail.record(_delivered(key))
    assert trail.record(_delivered("b" * 64)) == first + 1
    with engine.connect() as connection:
        count = connection.scalar(select(func.count()).where(AuditEventRow.delivery_key == key))
    assert count == 1
    assert verify_chain(engine).ok


def test_racing_deliveries_give_one_row(trail: AuditTrail, engine: Engine) -> None:
    key = "c" * 64
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        barrier.wait()
        try:
            trail.record(_delivered(key))
            outcomes.append("recorded")
        except DuplicateDelivery:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["duplicate"] * 7 + ["recorded"]
    assert verify_chain(engine).rows_checked == 1


# -- failing closed (case 45) -------------------------------------------------------------


def test_database_down_is_audit_unavailable_quickly() -> None:
    engine = create_engine_for(unreachable_postgres_url())
    try:
        started = time.monotonic()
        with pytest.raises(AuditUnavailable) as caught:
            AuditTrail(engine).record(_event())
        assert time.monotonic() - started < 5
        assert isinstance(caught.value, ServiceUnavailable)
        assert LOGIN_HASH not in str(caught.value)
        with pytest.raises(AuditUnavailable):
            verify_chain(engine)
        with pytest.raises(AuditUnavailable):
            search(engine)
    finally:
        engine.dispose()


def _read_only_url(database_url: str, tmp_path: Path) -> str:
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        path.chmod(0o444)  # does not stop root, hence also SQLite's own read-only mode
        return f"sqlite:///file:{path}?mode=ro&uri=true"
    url = make_url(database_url)
    options = f"{url.query['options']} -cdefault_transaction_read_only=on"
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def test_read_only_database_is_audit_unavailable(
    trail: AuditTrail, engine: Engine, database_url: str, tmp_path: Path
) -> None:
    _fill(trail, 2)
    engine.dispose()
    read_only = create_engine_for(_read_only_url(database_url, tmp_path))
    try:
        with pytest.raises(AuditUnavailable):
            AuditTrail(read_only).record(_event())
        with pytest.raises(AuditUnavailable):
            AuditTrail(read_only).record_many([_event(), _event(1)])
        assert verify_chain(read_only).rows_checked == 2  # reading still works
    finally:
        read_only.dispose()
    assert [r.id for r in search(engine)] == [1, 2]


def test_constraint_violation_is_audit_unavailable(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail, 2)
    _sql(engine, _forged(engine, 3, "0" * 64))  # takes the id the head will hand out next
    with pytest.raises(AuditUnavailable):
        trail.record(_event())
    with engine.connect() as connection:
        assert connection.scalar(select(AuditChainHead.last_id)) == 2


def test_missing_chain_head_is_audit_unavailable(trail: AuditTrail, engine: Engine) -> None:
    _sql(engine, "DELETE FROM audit_chain_head")
    with pytest.raises(AuditUnavailable, match="migrations"):
        trail.record(_event())


# -- search -------------------------------------------------------------------------------


def test_search_filters(trail: AuditTrail, engine: Engine) -> None:
    trail.record(_event(1))
    trail.record(_event(2, login_hash=OTHER_HASH, data_source="sandbox-tax"))
    trail.record(_event(3, client_id="sl_other"))
    assert [r.id for r in search(engine, login_hash=LOGIN_HASH)] == [1, 3]
    assert [r.id for r in search(engine, login_hash=OTHER_HASH)] == [2]
    assert [r.id for r in search(engine, client_id="sl_other")] == [3]
    assert [r.id for r in search(engine, data_source="sandbox-tax")] == [2]
    second = _row(engine, 2)["at"]
    assert [r.id for r in search(engine, since=second)] == [2, 3]
    assert [r.id for r in search(engine, until=second)] == [1]
    assert [r.id for r in search(engine, limit=1, offset=1)] == [2]
    assert search(engine, since=datetime.now(UTC) + timedelta(hours=1)) == []
    assert search(engine)[0].to_json()["at"].endswith("+00:00")
    with pytest.raises(InvalidAuditEvent):
        search(engine, since=datetime(2024, 1, 1))  # naive
    with pytest.raises(InvalidAuditEvent):
        search(engine, limit=0)


# -- what a row may hold (cases 37, 38) ---------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"detail_code": "invalid credentials for alice@example.com"}, "detail_code"),
        ({"outcome": "Failed"}, "outcome"),
        ({"outcome": "x" * 41}, "outcome"),
        ({"login_hash": "alice@example.com"}, "login_hash"),
        ({"login_hash": "hmac-sha256:" + "AB" * 32}, "login_hash"),
        ({"client_id": "Alice Martin"}, "client_id"),
        ({"data_source": "Bank of Alice"}, "data_source"),
        ({"flow_ref": "alice martin"}, "flow_ref"),
        ({"browser_family": "Mozilla/5.0 (X11)"}, "browser_family"),
        ({"device_type": "iPhone 15"}, "device_type"),
        ({"event": "alice_logged_in"}, "event"),
        ({"event": EventType.DATA_DELIVERED}, "delivery_key"),
        ({"delivery_key": "a" * 64}, "delivery_key"),
    ],
)
def test_free_text_cannot_enter_a_row(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidAuditEvent) as caught:
        _event(**fields)
    message = str(caught.value)
    assert message.startswith(field)
    for value in fields.values():
        if isinstance(value, str) and len(value) > 3 and value not in ("data_delivered",):
            assert value not in message


def test_login_hash_input_normalises() -> None:
    expected = b"sandbox-bank\x00alice@example.com"
    assert login_hash_input("sandbox-bank", "alice@example.com") == expected
    assert login_hash_input("sandbox-bank", "  Alice@Example.COM\t") == expected
    assert login_hash_input("sandbox-bank", "\uff41lice@example.com") == expected  # fullwidth a
    assert login_hash_input("sandbox-bank", "\u00a0alice@example.com") == expected  # NBSP
    assert login_hash_input("sandbox-tax", " 1234567890123 ") == b"sandbox-tax\x001234567890123"
    assert login_hash_input("sandbox-bank", "STRASSE") == login_hash_input("sandbox-bank", "straße")
    with pytest.raises(InvalidAuditEvent):
        login_hash_input("sandbox-bank", "   ")
    with pytest.raises(InvalidAuditEvent):
        login_hash_input("bank\x00alice", "x")


def test_login_pseudonym_through_the_hsm(
    key_layer: KeyLayer, trail: AuditTrail, engine: Engine
) -> None:
    """Case 38: same login, same pseudonym; another source, another one; the KAT format; and
    nothing of the login in the stored rows (case 37)."""
    first = login_hash(key_layer, "sandbox-bank", "Alice")
    assert first == login_hash(key_layer, "sandbox-bank", " alice ")
    assert first != login_hash(key_layer, "sandbox-telecom", "alice")
    assert first == key_layer.keyed_hash(b"sandbox-bank\x00alice")
    trail.record(_event(login_hash=first))
    with engine.connect() as connection:
        dump = repr(connection.execute(text("SELECT * FROM audit_events")).all())
    assert first in dump and "alice" not in dump.lower()
    assert [r.login_hash for r in search(engine, login_hash=first)] == [first]


# -- group commit (`record_many`, `AsyncAudit`) ------------------------------------------------


def test_several_rows_in_one_transaction_keep_the_chain_and_each_outcome(
    trail: AuditTrail, engine: Engine
) -> None:
    delivered = _event(event=EventType.DATA_DELIVERED, delivery_key="k" * 64)
    first = trail.record_many([_event(1), delivered, _event(2)])
    assert first[0] == 1 and first[1] == 2 and first[2] == 3
    again = _event(event=EventType.DATA_DELIVERED, delivery_key="k" * 64)
    twice = _event(event=EventType.DATA_DELIVERED, delivery_key="j" * 64)
    second = trail.record_many([again, twice, _event(3), twice])
    assert isinstance(second[0], DuplicateDelivery)  # recorded by the first batch
    assert second[1] == 4 and second[2] == 5
    assert isinstance(second[3], DuplicateDelivery)  # earlier in the same batch
    assert verify_chain(engine).ok
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(AuditEventRow)) == 5


def test_concurrent_group_commits_keep_one_chain(database_url: str, engine: Engine) -> None:
    """The group commit's statements go to the driver directly (`trail._Statements`): 4
    processes x 10 batches of 3 rows still make one gap-free chain, each row hashed as read."""
    script = (
        "import sys\n"
        "from sharelock.audit import AuditEvent, AuditTrail\n"
        "from sharelock.db import create_engine_for\n"
        "trail = AuditTrail(create_engine_for(sys.argv[1]))\n"
        "for i in range(10):\n"
        "    refs = [f'w{sys.argv[2]}-{i}-{j}' for j in range(3)]\n"
        "    trail.record_many([AuditEvent('flow_started', flow_ref=ref) for ref in refs])\n"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, database_url, str(n)]) for n in range(4)
    ]
    assert [w.wait(timeout=60) for w in workers] == [0, 0, 0, 0]
    report = verify_chain(engine)
    assert report.ok and report.rows_checked == 120 and report.last_id == 120
    rows = search(engine, limit=200)
    assert [r.id for r in rows] == list(range(1, 121))
    for previous, row in itertools.pairwise(rows):
        assert row.prev_hash == previous.row_hash


def test_group_commit_writes_what_core_writes(trail: AuditTrail, engine: Engine) -> None:
    """A row of a group commit and a row of `record` are stored alike (the time in the
    column's own form, to the microsecond), and both verify."""
    by_core = trail.record(_event(1))
    [by_batch] = trail.record_many([_event(2)])
    assert (by_core, by_batch) == (1, 2)
    with engine.connect() as connection:
        stored = connection.scalars(text("SELECT CAST(at AS TEXT) FROM audit_events ORDER BY id"))
        # PostgreSQL prints a fraction of a second without its trailing zeros (.1234 for
        # .123400): the fraction's length says nothing of how the row was written.
        shapes = {re.sub(r"[0-9]", "9", re.sub(r"\.[0-9]+", ".F", value)) for value in stored}
    assert len(shapes) == 1, shapes
    assert _row(engine, by_core)["at"] <= _row(engine, by_batch)["at"]
    assert verify_chain(engine).ok


def test_group_commit_fails_closed(trail: AuditTrail, engine: Engine) -> None:
    _fill(trail, 2)
    _sql(engine, _forged(engine, 3, "0" * 64))  # takes the id the head will hand out next
    with pytest.raises(AuditUnavailable):
        trail.record_many([_event(7), _event(8)])
    with engine.connect() as connection:
        assert connection.scalar(select(AuditChainHead.last_id)) == 2
        assert connection.scalar(select(func.count()).select_from(AuditEventRow)) == 3
    _sql(engine, "DELETE FROM audit_chain_head")
    with pytest.raises(AuditUnavailable, match="migrations"):
        trail.record_many([_event(9)])


def test_group_commit_index_race_refuses_only_the_duplicate(
    trail: AuditTrail, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the unique index, not the batch's own check, sees a duplicate delivery key (a race
    the head's lock should prevent), the driver's error is Core's `IntegrityError` again and
    each row is retried alone: only the duplicate is refused."""
    from sharelock.audit import trail as trail_module

    first = trail.record(_delivered("d" * 64))
    monkeypatch.setattr(trail_module._Statements, "delivered_among", lambda *_: set())
    results = trail.record_many([_delivered("d" * 64), _event(5)])
    assert isinstance(results[0], DuplicateDelivery)
    assert results[1] == first + 1
    assert verify_chain(engine).ok


async def test_rows_asked_for_together_share_a_transaction(engine: Engine) -> None:
    from sqlalchemy import event as sa_event

    from sharelock.flow import AsyncAudit

    commits = 0

    def count(_: object) -> None:
        nonlocal commits
        commits += 1

    sa_event.listen(engine, "commit", count)
    try:
        audit = AsyncAudit(AuditTrail(engine))
        ids = await asyncio.gather(
            *(
                audit.record(EventType.FLOW_STARTED, client_id="sl_client", outcome="ok")
                for _ in range(20)
            )
        )
    finally:
        sa_event.remove(engine, "commit", count)
    assert sorted(ids) == list(range(1, 21))
    # All twenty were waiting when the writer ran: one transaction, not twenty.
    assert commits == 1
    assert verify_chain(engine).ok


async def test_a_failed_group_commit_fails_every_row_in_it(engine: Engine) -> None:
    from sharelock.flow import AsyncAudit

    with engine.begin() as connection:
        connection.execute(text("DROP TABLE audit_chain_head"))
    audit = AsyncAudit(AuditTrail(engine))
    results = await asyncio.gather(
        *(audit.record(EventType.FLOW_STARTED, outcome="ok") for _ in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, AuditUnavailable) for r in results)
