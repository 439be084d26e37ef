"""Nothing personal remains in clear anywhere (SECURITY-CHECKLIST C 37-38): after a delivery, a
refusal and an expiry, every Redis key and value, every SQL row and the database files, and
every log record hold none of the person's data or credentials; audit rows carry only keyed
pseudonyms, the same login giving the same one. Real Redis, SQLite, SoftHSM, HTTP, sandbox."""

from __future__ import annotations

import base64
import json
import logging
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from sharelock.audit import login_hash_input
from sharelock.config import Retention
from sharelock.flow.records import COLLECTED
from sharelock.keys import KeyLayer
from tests.support.broker import Share, Stack, StackFactory, flow_keys, record_key, sqlite_url
from tests.support.redis_server import RedisServer

IBAN = "FR7699990000010001234567834"
PLANTED_PASSWORD = "Plant-9d1e-pw!"
PERSONAL = (
    IBAN,
    "FR76 9999 0000 0100 0123 4567 834",
    "Martin",
    "alice-pass",
    PLANTED_PASSWORD,
    "12 rue de la République",
    "1985-03-14",
    "14/03/1985",
    "SBOXFRPP",
)
LOGIN_HASH = re.compile(r"hmac-sha256:[0-9a-f]{64}")


def spellings(value: str) -> set[bytes]:
    """The value as bytes, and as it could appear encoded: hex, JSON-escaped, and standard and
    URL-safe base64 at each of the three alignments (the stable middle of each encoding)."""
    raw = value.encode("utf-8")
    found = {raw, raw.hex().encode(), value.encode("ascii", "backslashreplace")}
    found.add(value.encode("unicode_escape"))
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + raw).rstrip(b"=")
            found.add(text[4 if shift else 0 : -4])
    return {needle for needle in found if len(needle) >= 6}


NEEDLES = {needle for value in PERSONAL for needle in spellings(value)}


def hits(blobs: Iterable[tuple[str, bytes]]) -> list[str]:
    return [
        f"{where}: {needle!r}"
        for where, blob in blobs
        for needle in NEEDLES
        if needle in blob or needle.lower() in blob.lower()
    ]


@dataclass
class Stacks:
    redis: RedisServer
    main: Stack
    short: Stack
    databases: tuple[Path, Path]


@pytest.fixture(scope="module")
def stacks(
    make_stack: StackFactory, sandbox_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stacks]:
    main_db = tmp_path_factory.mktemp("db-main")
    short_db = tmp_path_factory.mktemp("db-short")
    short = Retention(
        session=timedelta(seconds=2),
        authorization_code=timedelta(seconds=1),
        access_token=timedelta(seconds=1),
        pushed_request=timedelta(seconds=1),
    )
    with (
        RedisServer(tmp_path_factory.mktemp("redis")) as server,
        make_stack(
            redis_url=server.url, sandbox_url=sandbox_url, database_url=sqlite_url(main_db)
        ) as main,
        make_stack(
            redis_url=server.url,
            sandbox_url=sandbox_url,
            database_url=sqlite_url(short_db),
            retention=short,
        ) as short_stack,
    ):
        yield Stacks(server, main, short_stack, (main_db, short_db))


def redis_blobs(server: RedisServer) -> list[tuple[str, bytes]]:
    """Every key of the whole server with its DUMP and its readable value."""
    blobs: list[tuple[str, bytes]] = []
    with server.raw_client() as raw:
        for key in raw.scan_iter(match="*", count=1000):
            name = key.decode("utf-8", "replace")
            blobs.append((f"redis key {name}", key))
            dumped = raw.dump(key)
            if dumped is None:
                continue
            blobs.append((f"redis DUMP {name}", dumped))
            kind = raw.type(key)
            if kind == b"string":
                value = raw.get(key)
                blobs.append((f"redis GET {name}", value or b""))
            elif kind == b"zset":
                members = raw.zrange(key, 0, -1)
                blobs.append((f"redis ZRANGE {name}", b"\n".join(members)))
            elif kind == b"hash":
                blobs.append((f"redis HGETALL {name}", repr(raw.hgetall(key)).encode()))
            elif kind in (b"set", b"list"):
                values = raw.smembers(key) if kind == b"set" else raw.lrange(key, 0, -1)
                blobs.append((f"redis {kind.decode()} {name}", b"\n".join(values)))
    return blobs


def sql_blobs(directory: Path) -> list[tuple[str, bytes]]:
    """Every row of every table, and the raw bytes of every file (database, WAL, SHM)."""
    blobs: list[tuple[str, bytes]] = []
    with sqlite3.connect(directory / "sharelock.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert "audit_events" in tables and "partners" in tables
        for table in tables:
            rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
            blobs.append((f"sql {table}", repr(rows).encode("utf-8")))
            blobs.append((f"sql {table} (utf-8)", "\n".join(map(str, rows)).encode("utf-8")))
    for path in sorted(directory.iterdir()):
        if path.is_file():
            blobs.append((f"file {path.name}", path.read_bytes()))
    return blobs


def log_blobs(caplog: pytest.LogCaptureFixture) -> list[tuple[str, bytes]]:
    blobs = [("caplog text", caplog.text.encode("utf-8"))]
    for record in caplog.records:
        text = "\n".join(
            [record.name, record.getMessage(), repr(record.args), record.exc_text or ""]
        )
        blobs.append((f"log {record.name}", text.encode("utf-8")))
    return blobs


def wait_gone(stack: Stack, flow_id: str, timeout: float = 8) -> None:
    deadline = time.monotonic() + timeout
    with stack.raw_redis() as raw:
        while flow_keys(raw, flow_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert flow_keys(raw, flow_id) == {}


def test_nothing_personal_remains_in_clear(
    stacks: Stacks, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)

    # Delivered, after a failed attempt with a planted wrong password.
    delivered = Share(stacks.main)
    assert delivered.start().status_code == 303
    failed = delivered.send_credentials("alice", PLANTED_PASSWORD)
    assert failed.json()["reason"] == "invalid_credentials"
    delivered.collect_started()
    token = delivered.exchange(delivered.approve_and_get_code()).json()["access_token"]
    shared = delivered.fetch(token)
    assert shared.status_code == 200
    # The needles are the person's real values: the searches below can find something.
    assert shared.json()["data"]["bank_account"]["iban"] == IBAN
    assert shared.json()["data"]["identity"]["family_name"] == "Martin"
    assert shared.json()["data"]["identity"]["birthdate"] == "1985-03-14"
    assert hits([("delivered", shared.content)])

    # Refused.
    refused = Share(stacks.main)
    refused.collect()
    assert refused.review().json()["fields"]
    assert "error=access_denied" in refused.decide(False).json()["redirect_to"]

    # Abandoned, and erased by Redis at the session cap.
    abandoned = Share(stacks.short)
    abandoned.collect()
    with stacks.short.raw_redis() as raw:
        assert record_key(COLLECTED, abandoned.flow_id) in flow_keys(raw, abandoned.flow_id)
    wait_gone(stacks.short, abandoned.flow_id)

    with stacks.main.raw_redis() as raw:
        assert flow_keys(raw, refused.flow_id) == {}
        assert [k for k in flow_keys(raw, delivered.flow_id) if "identity" not in k] == []

    redis_found = redis_blobs(stacks.redis)
    assert len(redis_found) > 2  # the kept identity, the expiry index, their dumps
    assert hits(redis_found) == []
    for directory in stacks.databases:
        assert hits(sql_blobs(directory)) == []
    assert caplog.records  # the capture works (the broker and httpx log at INFO/DEBUG)
    assert hits(log_blobs(caplog)) == []


def test_audit_rows_hold_pseudonyms_only(stacks: Stacks, key_layer: KeyLayer) -> None:
    first = Share(stacks.main)
    assert first.start().status_code == 303
    # The same login typed differently: one pseudonym.
    assert first.send_credentials("  ALICE ", PLANTED_PASSWORD).json()["status"] == "failed"
    first.collect_started()
    second = Share(stacks.main)
    second.collect()
    third = Share(stacks.short)
    third.collect()
    other = Share(stacks.main)
    assert other.start().status_code == 303
    assert other.send_credentials("bob", "bob-pass").json()["status"] == "otp_required"

    expected = key_layer.keyed_hash(login_hash_input("sandbox-bank", "alice"))
    assert LOGIN_HASH.fullmatch(expected)
    alice_rows = [
        row
        for stack, share in ((stacks.main, first), (stacks.main, second), (stacks.short, third))
        for row in stack.audit_rows("credentials_received", flow_id=share.flow_id)
    ]
    assert len(alice_rows) == 4
    assert {row.login_hash for row in alice_rows} == {expected}
    bob = stacks.main.audit_rows("credentials_received", flow_id=other.flow_id)
    assert len(bob) == 1 and bob[0].login_hash != expected
    assert bob[0].login_hash is not None and LOGIN_HASH.fullmatch(bob[0].login_hash)

    for stack in (stacks.main, stacks.short):
        rows = stack.audit_rows()
        assert rows
        for row in rows:
            assert row.login_hash is None or LOGIN_HASH.fullmatch(row.login_hash), row
            for value in (row.flow_ref, row.delivery_key, row.outcome, row.detail_code):
                assert value is None or re.fullmatch(r"[A-Za-z0-9_:.-]{1,128}", value), row
            assert row.flow_ref is None or "alice" not in row.flow_ref.lower()


def test_checks_leave_answers_and_no_value(
    stacks: Stacks, caplog: pytest.LogCaptureFixture
) -> None:
    """A share of checks only (docs/checks.md): the partner types the person's name, IBAN and
    address, the bank gives them with her birthdate; the partner receives answers, and no
    value, typed or collected, is left in clear in Redis, SQL or the logs, nor in the answer."""
    caplog.set_level(logging.DEBUG)
    details = json.dumps(
        [
            {"type": "sharelock_check", "check": "name_match", "given_name": "Alice",
             "family_name": "Martin"},
            {"type": "sharelock_check", "check": "iban_holder_match", "iban": IBAN},
            {"type": "sharelock_check", "check": "age_over", "age": 18},
            {"type": "sharelock_check", "check": "address_match",
             "street": "12 rue de la République", "postal_code": "69002", "city": "Lyon"},
        ]
    )  # fmt: skip
    share = Share(stacks.main, scope="")
    assert share.start(scope=None, authorization_details=details).status_code == 303
    share.collect_started()
    token = share.exchange(share.approve_and_get_code()).json()["access_token"]
    shared = share.fetch(token)
    assert [c["result"] for c in shared.json()["checks"]] == ["match", "match", True, "match"]
    assert hits([("delivered", shared.content)]) == []
    with stacks.main.raw_redis() as raw:
        assert flow_keys(raw, share.flow_id) == {}
    assert hits(redis_blobs(stacks.redis)) == []
    for directory in stacks.databases:
        assert hits(sql_blobs(directory)) == []
    assert hits(log_blobs(caplog)) == []
