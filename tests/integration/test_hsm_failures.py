"""The HSM missing or failing (SECURITY-CHECKLIST 43 and 44): a clear one-line error naming the
setting or the problem, `HsmUnavailable` from the key layer, never a traceback, never the PIN,
never clear content, never a software fallback.

SoftHSM reads its configuration once per process, at C_Initialize: every case runs in a child
process (the `sharelock` command, or `tests/support/hsm_worker.py` for the key layer)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sharelock.config import Settings
from sharelock.keys import KeyLayer

SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]
PIN = "Plant-PIN-51c3-7777"


def child_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    return env | {f"SHARELOCK_{name.upper()}": value for name, value in settings.items()}


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run([str(SHARELOCK), *args], env)


def worker(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = run([sys.executable, "-m", "tests.support.hsm_worker", *args], env)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


@dataclass(frozen=True)
class Broken:
    env: dict[str, str]
    says: tuple[str, ...]  # what the one-line message must name
    error: str  # what the key layer raises


@pytest.fixture(scope="module")
def broken_setups(
    key_layer: KeyLayer, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Broken]:
    """Each setup is the working test token with one thing wrong, and the PIN planted where
    the setup takes one."""
    tmp = tmp_path_factory.mktemp("broken")
    good = {"state_dir": str(settings.state_dir), "hsm_token_label": settings.hsm_token_label}
    empty_tokens = tmp / "empty-tokens"
    empty_tokens.mkdir()
    empty_conf = tmp / "softhsm2-empty.conf"
    empty_conf.write_text(f"directories.tokendir = {empty_tokens}\nobjectstore.backend = file\n")
    not_a_module = tmp / "libnot-pkcs11.so"
    not_a_module.write_bytes(b"\x7fELF not really" * 16)
    return {
        "module path wrong": Broken(
            child_env(**good, hsm_pin=PIN, pkcs11_module="/nonexistent.so"),
            ("SHARELOCK_PKCS11_MODULE", "/nonexistent.so"),
            "ConfigError",
        ),
        "module not PKCS#11": Broken(
            child_env(**good, hsm_pin=PIN, pkcs11_module=str(not_a_module)),
            ("cannot load the PKCS#11 module", str(not_a_module)),
            "HsmUnavailable",
        ),
        "PIN wrong": Broken(
            child_env(**good, hsm_pin=PIN),
            ("refused the PIN", "SHARELOCK_HSM_PIN"),
            "HsmUnavailable",
        ),
        "token label not found": Broken(
            child_env(**{**good, "hsm_token_label": "no-such-token"}, hsm_pin=PIN),
            ("no token labelled 'no-such-token'", "SHARELOCK_HSM_TOKEN_LABEL"),
            "HsmUnavailable",
        ),
        "SoftHSM conf with an empty token dir": Broken(
            child_env(**good, hsm_pin=PIN, softhsm_conf=str(empty_conf)),
            (f"no token labelled '{settings.hsm_token_label}'", "sharelock hsm init"),
            "HsmUnavailable",
        ),
        "SoftHSM conf missing": Broken(
            child_env(**good, hsm_pin=PIN, softhsm_conf=str(tmp / "missing.conf")),
            ("SHARELOCK_SOFTHSM_CONF", str(tmp / "missing.conf")),
            "ConfigError",
        ),
        "PIN file missing": Broken(
            child_env(**good, hsm_pin_file=str(tmp / "missing.pin")),
            ("SHARELOCK_HSM_PIN", str(tmp / "missing.pin")),
            "ConfigError",
        ),
        "state directory never initialised": Broken(
            child_env(state_dir=str(tmp / "never-initialised"), hsm_pin=PIN),
            ("sharelock hsm init",),
            "ConfigError",
        ),
    }


CASES = [
    "module path wrong",
    "module not PKCS#11",
    "PIN wrong",
    "token label not found",
    "SoftHSM conf with an empty token dir",
    "SoftHSM conf missing",
    "PIN file missing",
    "state directory never initialised",
]


@pytest.mark.parametrize(
    ("case", "command"),
    [(case, ("keys", "list")) for case in CASES]
    + [
        ("PIN wrong", ("keys", "generate")),
        ("PIN wrong", ("keys", "rotate")),
        ("token label not found", ("keys", "rotate")),
        ("module path wrong", ("hsm", "init")),
        ("module path wrong", ("serve",)),
    ],
)
def test_cli_says_what_is_wrong_in_one_line(
    broken_setups: dict[str, Broken], case: str, command: tuple[str, ...]
) -> None:
    setup = broken_setups[case]
    done = cli(setup.env, *command)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for fragment in setup.says:
        assert fragment in lines[0]
    assert PIN not in done.stderr


@pytest.mark.parametrize("case", CASES)
def test_key_layer_fails_closed(broken_setups: dict[str, Broken], case: str) -> None:
    """What the broker's readiness probe and start-up see: `HsmUnavailable` from `check()` once
    the layer exists (`ConfigError` at construction when a file is plainly missing)."""
    setup = broken_setups[case]
    report = worker(setup.env, "check")
    assert report["error"] == setup.error
    for fragment in setup.says:
        assert fragment in report["message"]
    assert PIN not in json.dumps(report)


def test_working_setup_control(key_layer: KeyLayer, settings: Settings) -> None:
    """Control: the same child, with nothing wrong, passes the check and lists the key."""
    env = child_env(state_dir=str(settings.state_dir), hsm_token_label=settings.hsm_token_label)
    assert worker(env, "check") == {"error": None}
    done = cli(env, "keys", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [k["kid"] for k in listed if k["use"] == "enc"] == [key_layer.active_key().kid]
    assert [k["kid"] for k in listed if k["use"] == "sig"] == [key_layer.signing_jwk()["kid"]]


@pytest.fixture
def own_token(key_layer: KeyLayer, settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """A copy of the test token in a state directory of its own (the test removes its token
    directory), with the configuration pointed at the copy."""
    state = tmp_path / "state"
    shutil.copytree(settings.hsm_dir, state / "hsm")
    conf = state / "hsm" / "softhsm2.conf"
    conf.write_text(conf.read_text().replace(str(settings.hsm_dir), str(state / "hsm")))
    yield state


def test_token_directory_removed_mid_run(settings: Settings, own_token: Path) -> None:
    """Checklist 44: the token directory vanishes while a broker process holds a session.
    Every decryption and readiness check then fails closed (`HsmUnavailable`, or the generic
    `EnvelopeRejected` when the RSA step fails inside the token), never a crash or clear
    content; when the directory is back, the same layer works again."""
    env = child_env(state_dir=str(own_token), hsm_token_label=settings.hsm_token_label)
    report = worker(env, "remove-token-dir")
    outcomes = report["outcomes"]
    assert sum(outcomes.values()) == 6
    assert set(outcomes) <= {"HsmUnavailable", "EnvelopeRejected"}, outcomes
    assert outcomes.get("HsmUnavailable", 0) >= 2  # the readiness checks among them
    assert report["recovered"] == [True, True, True]


def test_a_failing_second_layer_leaves_the_first_one_working(
    key_layer: KeyLayer, settings: Settings
) -> None:
    """Two key layers in one process (the CLI's start-up check and the app's layer under
    `sharelock serve`, or test fixtures): a second layer that cannot find its token, asked
    twice as a readiness probe would, must not re-initialise the module under the first one
    (it used to: the first layer's next operation failed with SessionHandleInvalid)."""
    env = child_env(state_dir=str(settings.state_dir), hsm_token_label=settings.hsm_token_label)
    report = worker(env, "two-layers")
    assert None not in report["second_errors"]  # the second layer did fail, twice
    assert report["first_after"] == ["ok", "ok", "ok"]
