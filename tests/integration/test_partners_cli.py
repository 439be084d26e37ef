"""`sharelock partners add --allow-plain-authorize`, `list` and `rotate-secret` as an operator
runs them: the installed console script, settings from the environment only, and a database of
the test's own (SQLite, and PostgreSQL when configured), which the test also reads directly."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, text

from sharelock.db import create_engine_for
from sharelock.registry import PartnerRegistry

SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]
PAR_HELP = (
    "registered as an exception to PAR-required: may send plain /authorize requests; FAPI 2.0"
    " forbids this, use only for legacy partners"
)

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env |= {
        "SHARELOCK_STATE_DIR": str(tmp_path / "state"),
        "SHARELOCK_DATABASE_URL": database_url,
        "COLUMNS": "250",
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
        assert done.returncode == expect, (
            f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        assert "Traceback" not in done.stderr
        return done

    return run


@pytest.fixture
def direct(database_url: str) -> Iterator[Engine]:
    """The same database, for the test's own reads and writes (the CLI migrates it)."""
    engine = create_engine_for(database_url)
    yield engine
    engine.dispose()


def add(run: Run, name: str, *extra: str) -> dict[str, Any]:
    done = run(
        "partners", "add",
        "--name", name,
        "--redirect-uri", "https://shop.example/cb",
        "--scope", "identity",
        "--profile", "basic",
        *extra,
    )  # fmt: skip
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def stored(engine: Engine, client_id: str) -> str:
    with engine.connect() as connection:
        value = connection.scalar(
            text("SELECT client_secret_hash FROM partners WHERE client_id = :id"), {"id": client_id}
        )
    assert isinstance(value, str)
    return value


def test_allow_plain_authorize_is_stored_and_listed(run: Run) -> None:
    assert PAR_HELP in " ".join(run("partners", "add", "--help").stdout.split())

    exempt = add(run, "Legacy Shop", "--allow-plain-authorize")
    plain = add(run, "Modern Shop")
    assert exempt["par_exempt"] is True and plain["par_exempt"] is False

    listed = json.loads(run("partners", "list", "--json").stdout)
    assert [(p["client_id"], p["par_exempt"]) for p in listed] == [
        (exempt["client_id"], True),
        (plain["client_id"], False),
    ]

    rows = {
        line.split()[1]: line
        for line in run("partners", "list").stdout.splitlines()
        if "sl_" in line
    }
    assert "PAR" in run("partners", "list").stdout
    assert "exempt" in rows[exempt["client_id"]] and "required" not in rows[exempt["client_id"]]
    assert "required" in rows[plain["client_id"]] and "exempt" not in rows[plain["client_id"]]


def test_rotate_secret_prints_a_new_secret_once(run: Run, direct: Engine) -> None:
    shown = add(run, "Shop")
    client_id, old = shown["client_id"], shown["client_secret"]

    rotated = run("partners", "rotate-secret", client_id)
    answer = json.loads(rotated.stdout)
    assert set(answer) == {"client_id", "client_secret"}
    assert answer["client_id"] == client_id
    new = answer["client_secret"]
    assert new != old and len(new) == 43
    assert stored(direct, client_id) == "sha256:" + hashlib.sha256(new.encode()).hexdigest()

    registry = PartnerRegistry(direct)
    assert registry.authenticate(client_id, old) is None
    found = registry.authenticate(client_id, new)
    assert found is not None and found.name == "Shop"

    listed = run("partners", "list", "--json").stdout
    assert new not in listed and old not in listed and "sha256:" not in listed


def test_rotate_secret_moves_a_legacy_partner_off_argon2(run: Run, direct: Engine) -> None:
    client_id = add(run, "Old Shop")["client_id"]
    legacy_secret = "legacy-" + "s" * 36
    with direct.begin() as connection:
        connection.execute(
            text("UPDATE partners SET client_secret_hash = :hash WHERE client_id = :id"),
            {"hash": PasswordHasher().hash(legacy_secret), "id": client_id},
        )
    assert stored(direct, client_id).startswith("$argon2id$")

    new = json.loads(run("partners", "rotate-secret", client_id).stdout)["client_secret"]
    assert stored(direct, client_id) == "sha256:" + hashlib.sha256(new.encode()).hexdigest()
    registry = PartnerRegistry(direct)
    assert registry.authenticate(client_id, legacy_secret) is None
    assert registry.authenticate(client_id, new) is not None


def test_rotate_secret_of_unknown_partner_is_one_error_line(run: Run) -> None:
    add(run, "Shop")
    done = run("partners", "rotate-secret", "sl_doesnotexist0000000000", expect=2)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "no partner with that client id" in lines[0]


def test_new_partners_are_fapi2_and_need_their_keys(run: Run, tmp_path: Path) -> None:
    """`fapi2` is the default profile: without public keys it is refused in one line that
    names the way out; with them it is stored and listed."""
    refused = run(
        "partners", "add", "--name", "Keyless", "--redirect-uri", "https://shop.example/cb",
        "--scope", "identity", expect=2,
    )  # fmt: skip
    assert "--profile basic" in refused.stderr and refused.stdout == ""
    jwks = tmp_path / "jwks.json"
    key = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
           "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "k1"}  # fmt: skip
    jwks.write_text(json.dumps({"keys": [key]}))
    added = json.loads(
        run(
            "partners", "add", "--name", "FAPI Shop", "--redirect-uri", "https://shop.example/cb",
            "--scope", "identity", "--jwks-file", str(jwks),
        ).stdout
    )  # fmt: skip
    assert added["profile"] == "fapi2"
    assert add(run, "Basic Shop")["profile"] == "basic"
    listed = {p["name"]: p["profile"] for p in json.loads(run("partners", "list", "--json").stdout)}
    assert listed["FAPI Shop"] == "fapi2" and listed["Basic Shop"] == "basic"
