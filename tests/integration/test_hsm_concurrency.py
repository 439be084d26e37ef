"""Concurrency and process model through the real HSM path (SECURITY-CHECKLIST 48).

The threaded runs happen in a child process (`tests/support/hsm_worker.py`): threads sharing
python-pkcs11 and SoftHSM 2.6 crashed with a double free or a segfault in the probe
(`shared/vectors/softhsm_threading_probe_log.txt`), and a crash must show up as a failed test,
not as a dead test runner. (python-pkcs11 0.10 also serialises the operations of one session;
the key layer's process-wide lock covers the rest: searches, logins, key generation.)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from sharelock.config import Settings
from sharelock.envelope import open_envelope
from sharelock.keys import KeyLayer
from tests.support.jwe import build

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = {"login": 128, "password": 128}


def run_worker(settings: Settings, *args: str, timeout: float = 120) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env |= {
        "SHARELOCK_STATE_DIR": str(settings.state_dir),
        "SHARELOCK_HSM_TOKEN_LABEL": settings.hsm_token_label,
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.hsm_worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    # A negative code is the signal that killed the child (-11 segfault, -6 abort).
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


@pytest.mark.parametrize(("threads", "ops"), [(8, 200), (16, 10)], ids=["8x200", "16x10"])
def test_threads_share_one_key_layer(
    key_layer: KeyLayer, settings: Settings, threads: int, ops: int
) -> None:
    """The issue's acceptance: "8 threads x 200 operations: no crash, no error, every result
    correct"; and the checklist's 16 parallel submissions. Each operation opens a distinct
    envelope and compares the clear content with what was sealed."""
    report = run_worker(settings, "stress", str(threads), str(ops))
    assert report["errors"] == {}
    assert report["wrong"] == 0
    assert report["ok"] == threads * ops


def test_forked_child_reinitialises_and_both_sides_keep_working(
    key_layer: KeyLayer, settings: Settings
) -> None:
    """A worker forked from a process that already used the HSM (gunicorn --preload, say) uses
    the same KeyLayer object: it must re-initialise PKCS#11 (SoftHSM `library.reset_on_fork`)
    before its first call, the first call included, even though another thread of the parent
    was inside the HSM lock at fork time. The parent keeps working after the child's
    re-initialisation."""
    report = run_worker(settings, "fork", timeout=60)
    child = report["child"]
    assert report["child_exit"] == 0, child.get("error")
    assert child["sync"] is True
    assert child["async"] is True
    assert child["pid"] != os.getpid()
    assert report["parent_before_fork"] is True
    assert report["parent_after_fork"] is True
    assert report["parent_busy_thread"].get("wrong", 0) == 0
    assert report["parent_busy_thread"]["ok"] > 0


async def test_sixteen_concurrent_async_opens(key_layer: KeyLayer, enc_jwk: dict[str, Any]) -> None:
    """`run_async` from an event loop: 16 opens at once all complete, correctly, on the HSM
    thread and never on the loop's own thread."""
    loop_thread = threading.get_ident()
    messages = [
        {"login": f"user{n}@example.test", "password": f"pw-{n}-{os.urandom(4).hex()}"}
        for n in range(16)
    ]

    def open_one(token: str) -> tuple[dict[str, str], int, str]:
        with open_envelope(token, key_layer) as opened:
            return (
                opened.json_object(CREDENTIALS),
                threading.get_ident(),
                threading.current_thread().name,
            )

    tokens = [build(enc_jwk, json.dumps(m).encode()).compact() for m in messages]
    results = await asyncio.wait_for(
        asyncio.gather(*(key_layer.run_async(open_one, token) for token in tokens)), timeout=60
    )
    assert [r[0] for r in results] == messages
    assert all(ident != loop_thread for _, ident, _ in results)
    assert all(name.startswith("hsm") for _, _, name in results)
