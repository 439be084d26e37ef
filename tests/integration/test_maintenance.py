"""Corrective maintenance (SPEC, "Retention": credentials kept only with the person's consent
after a failed collection, encrypted under an HSM key, 120 days at most), on the real parts:
the broker over HTTP, Redis, SoftHSM, SQLite (and PostgreSQL where configured), the sandbox
with a source put down, and `sharelock maintenance` as an operator runs it.

- the offer comes only after failures that repairing the connector could fix;
- no, a retry, a decision or the session's end erase the JWE kept for the answer, and nothing
  reaches SQL;
- yes stores one row: sealed in the HSM, no clear login, password or JWE anywhere in the
  database file, an expiry 120 days on, purged by retention when a short limit has passed;
- `maintenance show` prints the right credentials after writing its audit row, and shows
  nothing when that row cannot be written.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text, update

from sharelock.audit import login_hash_input
from sharelock.config import Retention, Settings
from sharelock.db import MaintenanceCredentialsRow
from sharelock.flow import flow_ref
from sharelock.flow.records import FLOW, MAINTENANCE_OFFER
from sharelock.keys import KeyLayer
from sharelock.maintenance import (
    MaintenanceError,
    MaintenanceExpired,
    MaintenanceNotFound,
    MaintenanceVault,
    delete_for_login_hash,
    list_kept,
    new_maintenance_id,
)
from sharelock.retention import enforcement, run_retention
from tests.support.broker import (
    CountingSandbox,
    Share,
    Stack,
    StackFactory,
    broker_stack,
    counting_sandbox,
    record_key,
    sqlite_url,
)
from tests.support.redis_server import RedisServer
from tests.support.sandbox import source_mode

SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://broker.example"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[CountingSandbox]:
    with counting_sandbox() as running:
        yield running


@pytest.fixture(scope="module")
def db_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("maintenance-db")


@pytest.fixture(scope="module")
def stack(
    make_stack: StackFactory, redis_server: RedisServer, sandbox: CountingSandbox, db_dir: Path
) -> Iterator[Stack]:
    with make_stack(
        redis_url=redis_server.url,
        sandbox_url=sandbox.url,
        database_url=sqlite_url(db_dir),
        connector_timeout=0.5,
    ) as running:
        yield running


def started(stack: Stack) -> Share:
    flow = Share(stack)
    assert flow.start().status_code == 303
    return flow


def planted() -> tuple[str, str]:
    """A login and a password found nowhere else, so a search for them means something."""
    return f"planted-login-{secrets.token_hex(6)}", f"Planted-Pass-{secrets.token_hex(8)}"


def fail_with_offer(stack: Stack, sandbox: CountingSandbox, login: str, password: str) -> Share:
    flow = started(stack)
    with source_mode(sandbox.url, "sandbox-bank", "down"):
        failed = flow.send_credentials(login, password)
    assert failed.status_code == 200, failed.text
    assert failed.json()["status"] == "failed"
    assert failed.json()["reason"] == "source_unavailable"
    assert failed.json()["maintenance_offer"] is True
    return flow


def answer(flow: Share, keep: Any) -> Any:
    return flow.browser.post(f"/api/flows/{flow.flow_id}/maintenance", json={"keep": keep})


def offer_exists(stack: Stack, flow: Share) -> bool:
    with stack.raw_redis() as raw:
        return bool(raw.exists(record_key(MAINTENANCE_OFFER, flow.flow_id)))


def kept_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        found = connection.execute(select(MaintenanceCredentialsRow.__table__))
        return [dict(row) for row in found.mappings()]


def count_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(select(func.count()).select_from(MaintenanceCredentialsRow)) or 0
        )


def database_bytes(directory: Path) -> bytes:
    """The SQLite database as it is on disk: the file and its write-ahead log.

    Read by another process: closing a descriptor of the file in this one would drop the
    POSIX locks SQLite holds on it for the broker's connections (a documented SQLite pitfall),
    and the next writer in another process would then corrupt the database."""
    files = sorted(str(path) for path in directory.glob("sharelock.db*"))
    return subprocess.run(["cat", *files], capture_output=True, check=True, timeout=30).stdout


# -- when the offer is made --------------------------------------------------------------------


def test_the_offer_follows_only_failures_the_engineers_could_fix(
    stack: Stack, sandbox: CountingSandbox
) -> None:
    assert stack.engine is not None
    before = count_rows(stack.engine)
    # The person's own problems: no offer, nothing kept for an answer.
    for login, password, reason in (
        ("alice", "not-her-password", "invalid_credentials"),
        ("locked", "locked-pass", "account_locked"),
    ):
        flow = started(stack)
        body = flow.send_credentials(login, password).json()
        assert (body["status"], body["reason"]) == ("failed", reason)
        assert body["maintenance_offer"] is False
        assert not offer_exists(stack, flow)
        assert flow.describe().json()["maintenance_offer"] is False
        assert answer(flow, True).status_code == 409
    # A wrong one-time code is the person's too; and a failure at the code step has no
    # credentials at hand any more (they were used for the first step).
    flow = started(stack)
    assert flow.send_credentials("bob", "bob-pass").json()["status"] == "otp_required"
    wrong = flow.send_otp("000000").json()
    assert wrong["reason"] == "invalid_otp" and "maintenance_offer" not in wrong
    with source_mode(sandbox.url, "sandbox-bank", "down"):
        down = flow.send_otp("123456").json()
    assert (down["status"], down["maintenance_offer"]) == ("failed", False)
    assert not offer_exists(stack, flow)

    # Failures of the source or of the connector: offered.
    for login, password, reason in (
        ("down", "down-pass", "source_unavailable"),
        ("slow", "slow-pass", "source_timeout"),
        ("broken", "broken-pass", "invalid_data"),
    ):
        flow = started(stack)
        body = flow.send_credentials(login, password).json()
        assert (body["status"], body["reason"]) == ("failed", reason), body
        assert body["maintenance_offer"] is True
        assert offer_exists(stack, flow)
        assert flow.describe().json()["maintenance_offer"] is True
        assert flow.describe().json()["status"] == "awaiting_credentials"
    assert count_rows(stack.engine) == before  # an offer is not a yes


def test_the_offer_lives_within_the_session_only(stack: Stack, sandbox: CountingSandbox) -> None:
    login, password = planted()
    flow = started(stack)
    envelope = flow.seal({"login": login, "password": password})
    with source_mode(sandbox.url, "sandbox-bank", "down"):
        failed = flow.browser.post(
            f"/api/flows/{flow.flow_id}/credentials",
            json={"data_source": "sandbox-bank", "credentials": envelope},
        )
    assert failed.json()["maintenance_offer"] is True
    with stack.raw_redis() as raw:
        offer_at = int(raw.pexpiretime(record_key(MAINTENANCE_OFFER, flow.flow_id)))  # type: ignore[arg-type]
        flow_at = int(raw.pexpiretime(record_key(FLOW, flow.flow_id)))  # type: ignore[arg-type]
        stored = raw.get(record_key(MAINTENANCE_OFFER, flow.flow_id))
    assert 0 < offer_at <= flow_at  # gone when the session is
    # Sealed like every value in Redis: neither the JWE nor anything in clear.
    assert isinstance(stored, bytes)
    for needle in (login, password, envelope, *envelope.split(".")[1:]):
        assert needle.encode() not in stored


# -- no, retry, decision: the offer is erased, nothing reaches SQL ------------------------------


def test_no_erases_the_offer_and_keeps_nothing(stack: Stack, sandbox: CountingSandbox) -> None:
    assert stack.engine is not None
    login, password = planted()
    flow = fail_with_offer(stack, sandbox, login, password)
    before = count_rows(stack.engine)
    response = answer(flow, False)
    assert response.status_code == 200, response.text
    assert response.json() == {"kept": False}
    assert response.headers["cache-control"] == "no-store"
    assert not offer_exists(stack, flow)
    assert count_rows(stack.engine) == before
    assert flow.describe().json()["maintenance_offer"] is False
    # Answered once: a second answer, even a yes, finds nothing to keep.
    assert answer(flow, True).status_code == 409
    assert count_rows(stack.engine) == before
    rows = stack.audit_rows("maintenance_consent_refused", flow_id=flow.flow_id)
    assert [(r.outcome, r.data_source) for r in rows] == [("refused", "sandbox-bank")]
    assert rows[0].login_hash is not None and rows[0].login_hash.startswith("hmac-sha256:")
    assert not stack.audit_rows("maintenance_consent_given", flow_id=flow.flow_id)
    # The flow goes on: the source back up, a real login works.
    flow.collect_started()


def test_a_retry_or_another_source_erases_the_offer(stack: Stack, sandbox: CountingSandbox) -> None:
    assert stack.engine is not None
    flow = fail_with_offer(stack, sandbox, *planted())
    before = count_rows(stack.engine)
    # Trying again, even with credentials that fail for the person's own reason.
    retry = flow.send_credentials("alice", "not-her-password").json()
    assert retry["maintenance_offer"] is False
    assert not offer_exists(stack, flow)
    assert answer(flow, True).status_code == 409
    assert count_rows(stack.engine) == before

    # A collected flow refused at the decision: nothing of it stays in Redis.
    flow = fail_with_offer(stack, sandbox, *planted())
    flow.collect_started()
    assert not offer_exists(stack, flow)
    assert flow.decide(False).status_code == 200
    assert not offer_exists(stack, flow)
    assert count_rows(stack.engine) == before


def test_bad_answers_are_refused(stack: Stack, sandbox: CountingSandbox) -> None:
    flow = fail_with_offer(stack, sandbox, *planted())
    for body in ({"keep": "yes"}, {"keep": 1}, {}, {"keep": True, "extra": 1}):
        response = flow.browser.post(f"/api/flows/{flow.flow_id}/maintenance", json=body)
        assert response.status_code == 400, body
        assert set(response.json()) == {"error", "error_description"}
    assert offer_exists(stack, flow)  # a malformed answer is no answer
    # Another browser cannot answer for this person.
    other = started(stack)
    stolen = other.browser.post(f"/api/flows/{flow.flow_id}/maintenance", json={"keep": True})
    assert stolen.status_code == 403
    assert offer_exists(stack, flow)
    assert answer(flow, False).json() == {"kept": False}


# -- yes: one sealed row, no clear secret anywhere in SQL --------------------------------------


@pytest.fixture(scope="module")
def kept(stack: Stack, sandbox: CountingSandbox, key_layer: KeyLayer) -> dict[str, Any]:
    """One yes, through the HTTP API, with a planted login and password."""
    assert stack.engine is not None
    login, password = planted()
    flow = started(stack)
    envelope = flow.seal({"login": login, "password": password})
    with source_mode(sandbox.url, "sandbox-bank", "down"):
        failed = flow.browser.post(
            f"/api/flows/{flow.flow_id}/credentials",
            json={"data_source": "sandbox-bank", "credentials": envelope},
        )
    assert failed.json()["maintenance_offer"] is True
    before = {row["id"] for row in kept_rows(stack.engine)}
    at = datetime.now(UTC)
    response = answer(flow, True)
    assert response.status_code == 200, response.text
    (row,) = [row for row in kept_rows(stack.engine) if row["id"] not in before]
    return {
        "login": login,
        "password": password,
        "envelope": envelope,
        "flow": flow,
        "answer": response.json(),
        "row": row,
        "at": at,
        "login_hash": key_layer.keyed_hash(login_hash_input("sandbox-bank", login)),
    }


def test_yes_keeps_one_sealed_row_for_120_days(
    stack: Stack, kept: dict[str, Any], db_dir: Path
) -> None:
    row, flow = kept["row"], kept["flow"]
    assert kept["answer"]["kept"] is True
    assert row["id"].startswith("mt_")
    assert (row["data_source"], row["client_id"]) == ("sandbox-bank", stack.partner.client_id)
    assert row["login_hash"] == kept["login_hash"]
    assert row["flow_ref"] == flow_ref(flow.flow_id)
    assert row["expires_at"] - row["created_at"] == timedelta(days=120)
    assert abs(row["created_at"] - kept["at"]) < timedelta(seconds=30)
    assert datetime.fromisoformat(kept["answer"]["expires_at"]) == row["expires_at"]
    assert not offer_exists(stack, flow)

    # Nothing in clear, and not the JWE either: not in the row, not in the database file.
    assert stack.engine is not None
    sealed = bytes(row["sealed"])
    secrets_ = [kept["login"], kept["password"]]
    for secret in secrets_:
        assert secret.encode() not in sealed
        assert secret not in repr(kept_rows(stack.engine))
    on_disk = database_bytes(db_dir)
    assert sealed in on_disk  # the search does look at the rows
    for needle in (*secrets_, kept["envelope"], *kept["envelope"].split(".")[1:]):
        assert needle.encode() not in on_disk

    rows = stack.audit_rows("maintenance_consent_given", flow_id=flow.flow_id)
    assert [(r.outcome, r.query, r.login_hash) for r in rows] == [
        ("kept", f"maintenance_id={row['id']}", kept["login_hash"])
    ]
    for record in stack.audit_rows(flow_id=flow.flow_id):
        for secret in secrets_:
            assert secret not in repr(record)


def test_the_row_opens_only_as_it_was_sealed(
    stack: Stack, kept: dict[str, Any], key_layer: KeyLayer
) -> None:
    assert stack.engine is not None
    vault = MaintenanceVault(stack.engine, key_layer, Retention())
    with vault.reveal(kept["row"]["id"]) as opened:
        assert json.loads(bytes(opened.view())) == {
            "login": kept["login"],
            "password": kept["password"],
        }
    assert opened.wiped
    with pytest.raises(MaintenanceNotFound):
        vault.reveal(new_maintenance_id())


# -- sharelock maintenance, as an operator runs it ---------------------------------------------

Run = Callable[..., subprocess.CompletedProcess[str]]


def cli(settings: Settings, database_url: str) -> Run:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env = base | {
        "SHARELOCK_STATE_DIR": str(settings.state_dir),
        "SHARELOCK_HSM_TOKEN_LABEL": settings.hsm_token_label,
        "SHARELOCK_DATABASE_URL": database_url,
        "COLUMNS": "200",
    }

    def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(SHARELOCK), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == expect, f"{args}: {done.returncode}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr
        return done

    return run


def test_list_and_show_through_the_cli(
    stack: Stack, kept: dict[str, Any], settings: Settings, key_layer: KeyLayer, db_dir: Path
) -> None:
    run = cli(settings, sqlite_url(db_dir))
    row_id = kept["row"]["id"]
    listed = run("maintenance", "list", "--json").stdout
    entry = next(item for item in json.loads(listed) if item["id"] == row_id)
    assert entry["login_hash"] == kept["login_hash"] and entry["data_source"] == "sandbox-bank"
    assert set(entry) == {
        "id",
        "created_at",
        "expires_at",
        "data_source",
        "login_hash",
        "client_id",
        "flow_ref",
    }
    table = run("maintenance", "list").stdout
    for output in (listed, table):
        assert kept["login"] not in output and kept["password"] not in output
    assert row_id in table

    # A reason that is not a short code, an unknown id: refused, nothing recorded.
    run("maintenance", "show", row_id, "--reason", "Because I want", expect=2)
    run("maintenance", "show", new_maintenance_id(), "--reason", "connector_repair", expect=2)
    assert not stack.audit_rows("maintenance_access")

    shown = run("maintenance", "show", row_id, "--reason", "connector_repair")
    assert f"login        {kept['login']}\n" in shown.stdout
    assert f"password     {kept['password']}\n" in shown.stdout
    as_json = json.loads(run("maintenance", "show", row_id, "--reason", "retest", "--json").stdout)
    assert (as_json["login"], as_json["password"]) == (kept["login"], kept["password"])
    access = stack.audit_rows("maintenance_access")
    assert [(r.actor, r.detail_code, r.query, r.outcome) for r in access] == [
        ("operator", "connector_repair", f"maintenance_id={row_id}", "shown"),
        ("operator", "retest", f"maintenance_id={row_id}", "shown"),
    ]
    assert access[0].login_hash == kept["login_hash"]
    for record in access:
        assert kept["login"] not in repr(record) and kept["password"] not in repr(record)
    verified = run("audit", "verify", "--json")
    assert json.loads(verified.stdout)["ok"] is True


def keep_directly(
    vault: MaintenanceVault,
    login: str,
    password: str,
    now: datetime | None = None,
    login_hash: str = "hmac-sha256:" + "ab" * 32,
) -> str:
    maintenance_id = new_maintenance_id()
    sealed = vault.seal(
        maintenance_id,
        json.dumps({"login": login, "password": password}).encode(),
        data_source="sandbox-bank",
        login_hash=login_hash,
        client_id="sl_partner",
        flow_ref="flow-ref",
        now=now,
    )
    vault.store(sealed)
    return maintenance_id


def _refuse_audit_inserts(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
            return
        connection.execute(
            text(
                "CREATE FUNCTION refuse_insert() RETURNS trigger AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                "FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
            )
        )


def test_show_refuses_when_its_audit_row_cannot_be_written(
    engine: Engine, database_url: str, settings: Settings, key_layer: KeyLayer
) -> None:
    login, password = planted()
    row_id = keep_directly(MaintenanceVault(engine, key_layer, Retention()), login, password)
    run = cli(settings, database_url)
    _refuse_audit_inserts(engine)
    refused = run("maintenance", "show", row_id, "--reason", "connector_repair", expect=2)
    assert login not in refused.stdout + refused.stderr
    assert password not in refused.stdout + refused.stderr
    assert "audit" in refused.stderr
    run("maintenance", "delete", row_id, expect=2)  # deleting is audited first too
    assert count_rows(engine) == 1


def test_tampered_or_expired_rows_do_not_open(engine: Engine, key_layer: KeyLayer) -> None:
    vault = MaintenanceVault(engine, key_layer, Retention())
    first = keep_directly(vault, *planted())
    second = keep_directly(vault, *planted())
    # Pushing the expiry back in SQL breaks the binding: the blob no longer opens.
    with engine.begin() as connection:
        connection.execute(
            update(MaintenanceCredentialsRow)
            .where(MaintenanceCredentialsRow.id == first)
            .values(expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=3650))
        )
    with pytest.raises(MaintenanceError):
        vault.reveal(first)
    # A blob moved to another row does not open there either.
    with engine.begin() as connection:
        blob = connection.scalar(
            select(MaintenanceCredentialsRow.sealed).where(MaintenanceCredentialsRow.id == first)
        )
        connection.execute(
            update(MaintenanceCredentialsRow)
            .where(MaintenanceCredentialsRow.id == second)
            .values(sealed=blob)
        )
    with pytest.raises(MaintenanceError):
        vault.reveal(second)
    # Past its expiry a row is refused even before the purge removes it.
    old = keep_directly(vault, *planted(), now=datetime.now(UTC) - timedelta(days=121))
    with pytest.raises(MaintenanceExpired):
        vault.reveal(old)


def test_one_logins_rows_can_be_found_and_erased(engine: Engine, key_layer: KeyLayer) -> None:
    """For the person's rights: their kept credentials, found and erased by the login hash."""
    vault = MaintenanceVault(engine, key_layer, Retention())
    mine = keep_directly(vault, *planted(), login_hash="hmac-sha256:" + "cd" * 32)
    other = keep_directly(vault, *planted())
    assert [k.id for k in list_kept(engine, login_hash="hmac-sha256:" + "cd" * 32)] == [mine]
    assert delete_for_login_hash(engine, "hmac-sha256:" + "cd" * 32) == 1
    assert [k.id for k in list_kept(engine)] == [other]


# -- retention -----------------------------------------------------------------------------------


def test_retention_purges_what_has_passed_its_limit(engine: Engine, key_layer: KeyLayer) -> None:
    short = Retention(maintenance_credentials=timedelta(seconds=1))
    vault = MaintenanceVault(engine, key_layer, short)
    gone = keep_directly(vault, *planted())
    lasting = keep_directly(MaintenanceVault(engine, key_layer, Retention()), *planted())
    time.sleep(2.1)  # expiries are whole seconds
    report = run_retention(engine, key_layer, retention=short, issuer=ISSUER)
    assert report.maintenance_rows_purged == 1
    assert report.to_json()["maintenance_credentials"] == {"rows_purged": 1}
    assert [row["id"] for row in kept_rows(engine)] == [lasting]
    with pytest.raises(MaintenanceNotFound):
        vault.reveal(gone)
    again = run_retention(engine, key_layer, retention=short, issuer=ISSUER)
    assert again.maintenance_rows_purged == 0  # idempotent
    limits = {limit["name"]: limit for limit in enforcement(short)}
    assert limits["maintenance_credentials"]["limit_seconds"] == 1
    assert "retention run" in limits["maintenance_credentials"]["enforced_by"]


def test_a_configured_limit_reaches_the_broker_and_the_purge(
    settings: Settings,
    key_layer: KeyLayer,
    redis_server: RedisServer,
    sandbox: CountingSandbox,
    tmp_path: Path,
) -> None:
    """A configured limit, end to end: the served broker sets the expiry from it, and
    `sharelock retention run` removes the row once it has passed (`maintenance purge` before
    that removes nothing). Time passes by moving the row's expiry into the past, as the clock
    would: a busy machine cannot make the test late."""
    retention = Retention(maintenance_credentials=timedelta(hours=3))
    with broker_stack(
        settings,
        key_layer,
        redis_url=redis_server.url,
        sandbox_url=sandbox.url,
        database_url=sqlite_url(tmp_path),
        retention=retention,
    ) as short:
        assert short.engine is not None
        flow = fail_with_offer(short, sandbox, *planted())
        assert answer(flow, True).json()["kept"] is True
        (row,) = kept_rows(short.engine)
        assert row["expires_at"] - row["created_at"] == timedelta(hours=3)
        run = cli(settings, sqlite_url(tmp_path))
        assert json.loads(run("maintenance", "purge", "--json").stdout) == {"rows_purged": 0}
        with short.engine.begin() as connection:
            connection.execute(
                update(MaintenanceCredentialsRow)
                .where(MaintenanceCredentialsRow.id == row["id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        report = json.loads(run("retention", "run", "--json").stdout)
        assert report["maintenance_credentials"] == {"rows_purged": 1}
        assert kept_rows(short.engine) == []
        run("maintenance", "show", row["id"], "--reason", "connector_repair", expect=2)


def test_the_persons_receipt_exports_and_erases_what_is_kept(
    stack: Stack, sandbox: CountingSandbox
) -> None:
    """Kept credentials are part of what a person can see (without the secret) and erase."""
    flow = fail_with_offer(stack, sandbox, "alice", "alice-pass")
    assert answer(flow, True).json()["kept"] is True
    assert stack.engine is not None
    before = count_rows(stack.engine)

    share = started(stack)
    assert share.send_credentials("alice", "alice-pass").json()["status"] == "collected"
    receipt = share.decide(True).json()["receipt"]

    exported = httpx.post(f"{stack.url}/api/rights/export", json={"receipt": receipt}, timeout=30)
    assert exported.status_code == 200, exported.text
    kept = exported.json()["maintenance_credentials"]
    assert len(kept) >= 1
    assert {k["data_source"] for k in kept} == {"sandbox-bank"}
    assert "alice-pass" not in exported.text
    assert all("login_hash" not in k for k in kept)

    erased = httpx.post(f"{stack.url}/api/rights/erasure", json={"receipt": receipt}, timeout=30)
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"]["maintenance_credentials"] == len(kept)
    assert count_rows(stack.engine) == before - len(kept)
    again = httpx.post(f"{stack.url}/api/rights/export", json={"receipt": receipt}, timeout=30)
    assert again.json()["maintenance_credentials"] == []
