"""`sharelock auditors`, `sharelock audit` and `sharelock retention` as an operator runs them:
the installed console script, settings from the environment only, the session's SoftHSM
token, and a SQLite database of the test's own, which the test also reads directly."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from sharelock.audit import AuditEvent, AuditTrail, EventType, login_hash_input
from sharelock.audit.records import COLUMNS
from sharelock.config import Settings
from sharelock.keys import KeyLayer

SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sharelock.db'}"


@pytest.fixture
def env(settings: Settings, key_layer: KeyLayer, database_url: str) -> dict[str, str]:
    """The session's token (its keys made by `key_layer`), the test's own database."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    return base | {
        "SHARELOCK_STATE_DIR": str(settings.state_dir),
        "SHARELOCK_HSM_TOKEN_LABEL": settings.hsm_token_label,
        "SHARELOCK_DATABASE_URL": database_url,
        "COLUMNS": "200",
    }


@pytest.fixture
def run(env: dict[str, str]) -> Run:
    def run(
        *args: str, stdin: str | None = None, expect: int = 0, **extra_env: str
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(SHARELOCK), *args],
            cwd=ROOT,
            env=env | extra_env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == expect, f"{args}: {done.returncode}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr
        return done

    return run


def _rows(engine: Engine, where: str = "1 = 1") -> list[dict[str, Any]]:
    with engine.connect() as connection:
        found = connection.execute(text(f"SELECT * FROM audit_events WHERE {where} ORDER BY id"))
        return [dict(row) for row in found.mappings()]


def _seed(engine: Engine, key_layer: KeyLayer, count: int = 3) -> str:
    digest = key_layer.keyed_hash(login_hash_input("sandbox-bank", "alice"))
    trail = AuditTrail(engine)
    for n in range(count):
        trail.record(
            AuditEvent(
                EventType.COLLECTION_SUCCEEDED,
                client_id="sl_partner",
                data_source="sandbox-bank",
                login_hash=digest,
                flow_ref=f"flow-{n}",
                outcome="collected",
            )
        )
    return digest


def test_auditors_add_list_revoke(run: Run, engine: Engine) -> None:
    added = json.loads(run("auditors", "add", "--name", "Cour des comptes").stdout)
    token, auditor_id = added["token"], added["auditor_id"]
    assert token.startswith("sla_") and len(token) >= 40 and auditor_id.startswith("au_")
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT * FROM auditors")).mappings().one()
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(dict(stored)) and token not in repr(_rows(engine))

    listed = run("auditors", "list", "--json").stdout
    assert json.loads(listed) == [{k: v for k, v in added.items() if k != "token"}]
    assert token not in listed and stored["token_hash"] not in listed
    assert auditor_id in run("auditors", "list").stdout

    revoked = json.loads(run("auditors", "revoke", auditor_id).stdout)
    assert revoked["revoked_at"] is not None
    assert json.loads(run("auditors", "list", "--json").stdout)[0]["revoked_at"] is not None
    unknown = run("auditors", "revoke", "au_nobody", expect=2)
    assert unknown.stderr.count("\n") == 1 and "no auditor with that id" in unknown.stderr
    run("auditors", "add", "--name", "   ", expect=2)

    events = [(r["event"], r["actor"], r["query"]) for r in _rows(engine)]
    assert events == [
        ("auditor_added", "operator", f"auditor={auditor_id}"),
        ("auditor_revoked", "operator", f"auditor={auditor_id}"),
    ]


def test_hash_search_export(run: Run, engine: Engine, key_layer: KeyLayer, tmp_path: Path) -> None:
    digest = _seed(engine, key_layer)
    assert run("audit", "hash", "--data-source", "sandbox-bank", "--login", "Alice").stdout == (
        digest + "\n"
    )
    prompted = run("audit", "hash", "--data-source", "sandbox-bank", stdin="alice\n")
    assert prompted.stdout.strip().endswith(digest) and "alice" not in prompted.stdout

    found = json.loads(run("audit", "search", "--login-hash", digest, "--json").stdout)
    flows = [r for r in found if r["event"] == "collection_succeeded"]
    assert [r["flow_ref"] for r in flows] == ["flow-0", "flow-1", "flow-2"]
    other = json.loads(run("audit", "search", "--client-id", "sl_other", "--json").stdout)
    assert [(r["event"], r["actor"]) for r in other] == [("auditor_query", "operator")]
    table = run("audit", "search", "--data-source", "sandbox-bank").stdout
    assert "collection_succeeded" in table and digest[:20] in table

    output = tmp_path / "export.csv"
    run("audit", "export", "--format", "csv", "--output", str(output), "--login-hash", digest)
    rows = list(csv.reader(io.StringIO(output.read_text())))
    assert tuple(rows[0]) == COLUMNS
    assert [r[COLUMNS.index("flow_ref")] for r in rows[1:4]] == ["flow-0", "flow-1", "flow-2"]
    lines = run("audit", "export", "--format", "jsonl", "--since", "2000-01-01").stdout
    exported = [json.loads(line) for line in lines.splitlines()]
    assert [e["id"] for e in exported] == [r["id"] for r in _rows(engine)][: len(exported)]
    assert len(exported) >= 3

    bad = run("audit", "search", "--since", "2025-01-01T10:00", expect=2)
    assert "since" in bad.stderr and bad.stderr.count("\n") == 1
    run("audit", "export", "--format", "xml", expect=2)

    asked = _rows(engine, "event = 'auditor_query'")
    assert {r["actor"] for r in asked} == {"operator"}
    kinds = [r["outcome"] for r in asked]
    assert kinds[:2] == ["hash", "hash"] and "traces" in kinds and "export" in kinds
    assert asked[0]["login_hash"] == digest
    assert all("alice" not in repr(r).lower() for r in _rows(engine))


def test_checkpoint_verify_and_tampering(run: Run, engine: Engine, key_layer: KeyLayer) -> None:
    _seed(engine, key_layer, 4)
    made = json.loads(run("audit", "checkpoint").stdout)
    assert made["id"] == 1 and made["last_id"] == 4 and made["jws"].count(".") == 2
    intact = run("audit", "verify")
    assert "trail intact" in intact.stdout and "checkpoints 1" in intact.stdout
    report = json.loads(run("audit", "verify", "--json").stdout)
    assert report["ok"] is True and report["attested_through_id"] == 4

    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET outcome = 'failed' WHERE id = 3"))
    broken = run("audit", "verify", expect=1)
    assert "TAMPERED altered" in broken.stdout and "row 3" in broken.stdout
    as_json = json.loads(run("audit", "verify", "--json", expect=1).stdout)
    assert (as_json["ok"], as_json["first_bad_id"], as_json["reason"]) == (False, 3, "altered")


def test_retention_run_with_a_short_limit(run: Run, engine: Engine, key_layer: KeyLayer) -> None:
    _seed(engine, key_layer, 3)
    time.sleep(1.2)
    first = json.loads(
        run("retention", "run", "--json", SHARELOCK_RETENTION__AUDIT_TRACE="PT1S").stdout
    )
    assert first["audit_trace"]["rows_purged"] == 3
    assert (first["audit_trace"]["purged_from_id"], first["audit_trace"]["purged_through_id"]) == (
        1,
        3,
    )
    assert _rows(engine, "id <= 3") == []  # gone
    again = run("retention", "run", SHARELOCK_RETENTION__AUDIT_TRACE="PT1S").stdout
    assert "nothing older than" in again and "checkpoint 2 signed" in again
    assert "session: Redis expiry" in again
    assert "trail intact" in run("audit", "verify").stdout
    default = json.loads(run("retention", "run", "--json").stdout)  # 13 months: keeps all
    assert default["audit_trace"]["rows_purged"] == 0
    assert {limit["name"]: limit["limit_seconds"] for limit in default["limits"]}[
        "audit_trace"
    ] == 396 * 86400


def test_hash_reads_a_piped_login_without_getpass(
    run: Run, engine: Engine, key_layer: KeyLayer
) -> None:
    """`echo alice | sharelock audit hash`: the login is read from the pipe, never echoed, and
    no `GetPassWarning` (nor any other warning) is printed."""
    digest = _seed(engine, key_layer, 1)
    piped = run("audit", "hash", "--data-source", "sandbox-bank", stdin="alice\n")
    assert piped.stdout == digest + "\n"
    assert "Warning" not in piped.stdout + piped.stderr and piped.stderr == ""
    assert "alice" not in piped.stdout + piped.stderr
    empty = run("audit", "hash", "--data-source", "sandbox-bank", stdin="", expect=2)
    assert "no login on standard input" in empty.stderr and "Warning" not in empty.stderr


def test_search_fits_80_columns(run: Run, engine: Engine, key_layer: KeyLayer) -> None:
    """On an 80-column terminal every row shows its id, its whole event name and a readable
    prefix of its hash; `--json` (and `export`) keep the whole values."""
    digest = _seed(engine, key_layer, 2)
    rows = json.loads(run("audit", "search", "--json").stdout)
    shown = run("audit", "search", COLUMNS="80").stdout
    assert all(len(line) <= 80 for line in shown.splitlines()), shown
    assert "hmac-sha…" not in shown and "hmac-sha256…" not in shown
    assert f"{digest[: len('hmac-sha256:') + 8]}…" in shown
    for row in rows:
        assert f"#{row['id']} " in shown and row["event"] in shown
    assert "sl_partner" in shown and "sandbox-bank" in shown
    assert json.loads(run("audit", "search", "--json", COLUMNS="80").stdout)[0]["login_hash"] == (
        digest
    )
    wide = run("audit", "search", COLUMNS="200").stdout
    assert f"{digest[: len('hmac-sha256:') + 8]}…" in wide and "collection_succeeded" in wide
    assert wide.startswith("┏") and all(len(line) <= 200 for line in wide.splitlines())
