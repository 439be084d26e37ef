"""The `sharelock hsm` and `sharelock keys` commands as a new operator runs them: the installed
console script, a fresh state directory, a token label of its own, settings only from the
environment. JWEs are opened by a separate process (`tests/support/hsm_worker.py`), because
SoftHSM binds each process to one configuration."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.jwe import build

SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]

Run = Callable[..., subprocess.CompletedProcess[str]]


def base_env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env |= {
        "SHARELOCK_STATE_DIR": str(state_dir),
        "SHARELOCK_HSM_TOKEN_LABEL": f"cli-{uuid.uuid4().hex[:12]}",
        "COLUMNS": "200",
        **extra,
    }
    return env


def runner(env: dict[str, str]) -> Run:
    def run(
        *args: str, stdin: str | None = None, expect: int = 0
    ) -> subprocess.CompletedProcess[str]:
        command = [str(SHARELOCK), *args]
        if args and args[0] == "worker":
            command = [sys.executable, "-m", "tests.support.hsm_worker", *args[1:]]
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            input=stdin,
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


def pins(state_dir: Path) -> list[str]:
    return [(state_dir / "hsm" / name).read_text().strip() for name in ("user.pin", "so.pin")]


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file and directory under `root`: its mode and the hash of its content."""
    found = {}
    for path in sorted(root.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(root))] = (path.stat().st_mode & 0o777, digest)
    return found


def listed(run: Run, use: str = "enc") -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = json.loads(run("keys", "list", "--json").stdout)
    return [k for k in keys if k["use"] == use]


def seal(jwk: dict[str, Any], text: str) -> tuple[str, str]:
    """A JWE for `jwk`, and the SHA-256 of its clear content as the worker reports it."""
    plaintext = json.dumps({"login": "operator", "password": text}).encode()
    return build(jwk, plaintext).compact(), hashlib.sha256(plaintext).hexdigest()


def test_hsm_init_creates_private_files_and_is_idempotent(tmp_path: Path) -> None:
    state = tmp_path / "state"  # does not exist yet
    run = runner(base_env(state))
    first = run("hsm", "init")
    assert "created" in first.stdout
    hsm = state / "hsm"
    assert (hsm / "softhsm2.conf").is_file()
    for directory in (hsm, hsm / "tokens"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    for name in ("user.pin", "so.pin", "softhsm2.conf"):
        assert (hsm / name).stat().st_mode & 0o777 == 0o600, name
    before = snapshot(state)

    second = run("hsm", "init")
    assert "already present" in second.stdout
    assert "created" not in second.stdout
    assert snapshot(state) == before
    for pin in pins(state):
        assert len(pin) >= 16
        for output in (first, second):
            assert pin not in output.stdout + output.stderr


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Path, list[str]]:
    """One state directory, initialised and with keys generated twice; the outputs of both
    `keys generate` runs."""
    state = tmp_path_factory.mktemp("operator")
    run = runner(base_env(state))
    run("hsm", "init")
    outputs = [run("keys", "generate").stdout, run("keys", "generate").stdout]
    return run, state, outputs


def test_keys_generate_is_idempotent(operator: tuple[Run, Path, list[str]]) -> None:
    run, state, (first, second) = operator
    for name in ("sharelock-audit-hmac", "sharelock-storage", "encryption key"):
        assert f"created  {name}" in first
        assert f"exists   {name}" in second
        assert f"created  {name}" not in second
    active = [
        line.split()[-1]
        for output in (first, second)
        for line in output.splitlines()
        if line.startswith("active kid ")
    ]
    assert len(active) == 2 and active[0] == active[1]
    assert len(listed(run)) == 1
    for pin in pins(state):
        assert pin not in first + second


def test_keys_list_shows_one_protected_rsa_4096_key(operator: tuple[Run, Path, list[str]]) -> None:
    run, _, (first, _) = operator
    (key,) = listed(run)
    assert key["status"] == "active"
    assert key["bits"] == 4096
    assert key["sensitive"] is True
    assert key["extractable"] is False
    assert key["always_sensitive"] is True
    assert key["never_extractable"] is True
    assert key["algorithms"] == ["RSA-OAEP"]
    assert key["destroy_after"] is None
    assert f"active kid {key['kid']}" in first
    table = run("keys", "list").stdout
    assert key["kid"] in table  # whole: an operator copies it from here
    assert "sensitive" in table and "EXPORTABLE" not in table


SHORT_GRACE_S = 30


def test_rotation_keeps_the_old_key_for_the_grace_period_then_destroys_it(tmp_path: Path) -> None:
    """A key's state derives from the labels and the grace period of the process that looks,
    and its grace counts from its successor's label time, taken *before* the RSA-4096
    generation (1-5 s in SoftHSM): with PT2S a rotation can destroy the key it has just
    retired. So the steps that must fall inside the grace period run with a grace of one day,
    and the steps after it with PT8S (longer than a generation): same token, same labels."""
    env = base_env(tmp_path / "state", SHARELOCK_KEY_GRACE_PERIOD="P1D")
    run = runner(env)
    run_short = runner({**env, "SHARELOCK_KEY_GRACE_PERIOD": f"PT{SHORT_GRACE_S}S"})
    run("hsm", "init")
    run("keys", "generate")
    (old_jwk,) = json.loads(run("worker", "jwks").stdout)["keys"]
    old_jwe, old_digest = seal(old_jwk, "sealed for the first key")

    rotated = run("keys", "rotate")
    new_kid = rotated.stdout.split("active kid ")[1].split()[0]
    assert new_kid != old_jwk["kid"]
    assert "destroyed" not in rotated.stdout
    keys = {k["kid"]: k for k in listed(run)}
    assert set(keys) == {old_jwk["kid"], new_kid}
    assert keys[new_kid]["status"] == "active"
    assert keys[old_jwk["kid"]]["status"] == "retiring"
    retired_at = datetime.fromisoformat(keys[new_kid]["created_at"])
    assert datetime.fromisoformat(keys[old_jwk["kid"]]["destroy_after"]) == retired_at + timedelta(
        days=1
    )

    published = json.loads(run("worker", "jwks").stdout)["keys"]
    assert [k["kid"] for k in published] == [new_kid, old_jwk["kid"]]  # active first
    new_jwe, new_digest = seal(published[0], "sealed for the second key")
    opened = json.loads(run("worker", "open", stdin=json.dumps([old_jwe, new_jwe])).stdout)
    assert opened["results"] == [{"sha256": old_digest}, {"sha256": new_digest}]

    # With the short grace, once it has passed since the rotation...
    over = retired_at + timedelta(seconds=SHORT_GRACE_S + 0.2)
    time.sleep(max(0.0, (over - datetime.now(UTC)).total_seconds()))
    short = {k["kid"]: k for k in listed(run_short)}
    assert short[old_jwk["kid"]]["status"] == "expired"  # ...the old key no longer decrypts,
    assert short[new_kid]["status"] == "active"
    refused = json.loads(run_short("worker", "open", stdin=json.dumps([old_jwe])).stdout)
    assert refused["results"] == [{"rejected": "the credential envelope could not be opened"}]

    again = run_short("keys", "rotate")  # ...and the next rotation destroys it.
    assert f"destroyed {old_jwk['kid']}" in again.stdout
    assert f"destroyed {new_kid}" not in again.stdout
    remaining = {k["kid"]: k["status"] for k in listed(run)}
    assert old_jwk["kid"] not in remaining
    assert len(remaining) == 2 and remaining[new_kid] == "retiring"
    after = json.loads(run("worker", "open", stdin=json.dumps([old_jwe, new_jwe])).stdout)
    assert after["results"] == [
        {"rejected": "the credential envelope could not be opened"},
        {"sha256": new_digest},
    ]


def test_signing_key_rotation_keeps_every_signature_verifiable(tmp_path: Path) -> None:
    """From a token of an earlier release (one `sharelock-audit-sign` key): a rotation makes a
    new key sign at once; the old one stays published for the grace period, then its private
    half is destroyed and its public half kept, so what it signed still verifies. As for the
    encryption keys, the steps inside the grace period run with one day of grace, the steps
    after it with one second, once that second has passed (states derive from the labels)."""
    env = base_env(tmp_path / "state", SHARELOCK_KEY_GRACE_PERIOD="P1D")
    run = runner(env)
    run_short = runner({**env, "SHARELOCK_KEY_GRACE_PERIOD": "PT1S"})
    run("hsm", "init")
    run("worker", "legacy-signing-key")
    assert "exists   signing key" in run("keys", "generate").stdout
    first = json.loads(run("worker", "sign", stdin="before the rotation").stdout)
    (legacy,) = first["published"]
    assert first["keyring"] == {legacy["kid"]: legacy}

    rotated = run("keys", "rotate", "--signing").stdout
    new_kid = rotated.split("active signing kid ")[1].split()[0]
    assert new_kid != legacy["kid"] and "retired" not in rotated
    keys = {k["kid"]: k for k in listed(run, "sig")}
    assert keys[new_kid]["status"] == "active" and keys[new_kid]["has_private"]
    assert keys[legacy["kid"]]["status"] == "retiring" and keys[legacy["kid"]]["published"]
    second = json.loads(run("worker", "sign", stdin="after the rotation").stdout)
    assert [k["kid"] for k in second["published"]] == [new_kid, legacy["kid"]]  # newest first
    pair = json.dumps([first["jws"], second["jws"]])
    checked = json.loads(run("worker", "verify", stdin=pair).stdout)
    assert [r["payload"]["text"] for r in checked["results"]] == [
        "before the rotation",
        "after the rotation",
    ]
    header = json.loads(base64.urlsafe_b64decode(second["jws"].split(".")[0] + "=="))
    assert header["kid"] == new_kid  # the new key signs at once

    retired_at = datetime.fromisoformat(keys[legacy["kid"]]["retired_at"])
    time.sleep(max(0.0, (retired_at + timedelta(seconds=1.2) - datetime.now(UTC)).total_seconds()))
    late = json.loads(run_short("worker", "sign", stdin="later").stdout)
    assert [k["kid"] for k in late["published"]] == [new_kid]  # grace over: unpublished
    again = run_short("keys", "rotate", "--signing").stdout
    assert f"retired {legacy['kid']}: private half destroyed" in again
    assert f"retired {new_kid}" not in again  # it has just begun its own grace period
    after = {k["kid"]: k for k in listed(run_short, "sig")}
    assert len(after) == 3
    assert after[legacy["kid"]]["has_private"] is False
    assert after[legacy["kid"]]["status"] == "retired"
    assert after[new_kid]["has_private"]  # its private half is destroyed only after its grace
    assert {k["kid"]: k["status"] for k in listed(run, "sig")}[new_kid] == "retiring"
    tokens = [first["jws"], second["jws"], late["jws"]]
    verified = json.loads(run("worker", "verify", stdin=json.dumps(tokens)).stdout)
    assert all("payload" in r for r in verified["results"])  # every period still verifies
    # A signature by a key the token never held, naming the retired key's kid, does not.
    forged = _forge(first["jws"])
    refused = json.loads(run("worker", "verify", stdin=json.dumps([forged])).stdout)
    assert refused["results"] == [{"rejected": "signature does not verify"}]


def _forge(jws: str) -> str:
    """`jws` re-signed (same header and payload) with a fresh software P-256 key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    head, body, _ = jws.split(".")
    der = ec.generate_private_key(ec.SECP256R1()).sign(
        f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())
    )
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{head}.{body}." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_ambiguous_encryption_key_is_a_one_line_error(tmp_path: Path) -> None:
    run = runner(base_env(tmp_path / "state"))
    run("hsm", "init")
    made = json.loads(run("worker", "duplicate-enc-label").stdout)
    assert made["objects"] == 4  # two pairs under one label
    for command in (("keys", "list"), ("keys", "list", "--json"), ("keys", "generate")):
        failed = run(*command, expect=2)
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1, failed.stderr
        assert lines[0].startswith("error: ")
        assert made["label"] in lines[0]
        assert "2 private and 2 public" in lines[0]
        assert failed.stdout == "" or command == ("keys", "generate")


def test_slow_commands_show_a_spinner_on_a_terminal_only(tmp_path: Path) -> None:
    """`hsm init`, `keys generate` and `keys rotate` (RSA-4096 in the HSM: seconds) say what
    they are doing on stderr when it is a terminal (TTY_COMPATIBLE=1 tells Rich it is), and
    print nothing there when it is not; stdout keeps the result."""
    env = base_env(tmp_path / "state")
    on_terminal = runner({**env, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"})
    plain = runner(env)
    for command, message in (
        (("hsm", "init"), "creating the SoftHSM token"),
        (("keys", "generate"), "creating the missing keys in the HSM"),
        (("keys", "rotate"), "generating a new RSA-4096 key in the HSM"),
    ):
        shown = on_terminal(*command)
        assert message in shown.stderr, (command, shown.stderr)
        assert message not in shown.stdout
        quiet = plain(*command)
        assert quiet.stderr == "", (command, quiet.stderr)
    assert "active kid " in quiet.stdout
