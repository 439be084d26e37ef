"""Child processes for the runs that drive whole shares from outside (`tests/bench/bench_flow.py`,
`tests/cluster/run.py`): a subprocess in a session of its own, its output in a log file, and
the sandbox data sources started apart, so that their CPU is measured apart."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sharelock.embedded import free_port

REPO = Path(__file__).resolve().parents[2]


class StartFailed(RuntimeError):
    """A child exited, or did not answer, during its start-up (with its log's tail)."""


class Child:
    """A subprocess in a session of its own: a Ctrl-C reaches only the run, which then stops
    it, and its whole process group can be killed at once, as a machine losing power would.
    `start` may be called again after `kill` or `stop` (same command, log appended)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group: the supervisor and every worker at once."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
        """`sig`, a wait of `timeout`, then SIGKILL to whatever is left in the group (a worker
        the supervisor did not reap)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill()

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


def wait_for(url: str, child: Child, *, timeout: float, verify: str | bool = True) -> None:
    """Poll `url` until it answers 200; `StartFailed` if the child exits or time runs out."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2, verify=verify) as client:
        while time.monotonic() < deadline:
            if not child.alive():
                raise StartFailed(f"{child.name} exited during start-up:\n{child.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code == 200:
                    return
            time.sleep(0.2)
    raise StartFailed(f"{child.name} not ready at {url} after {timeout:.0f} s:\n{child.log_tail()}")


def clean_env() -> dict[str, str]:
    """This environment without any SHARELOCK_ variable (children get only what they are given)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SHARELOCK_")}


def start_sandbox(state: Path, *, timeout: float = 30.0) -> tuple[Child, str]:
    """The sandbox data sources in a process of their own, without uvicorn's access log
    (`sharelock sandbox` logs every request at info)."""
    port = free_port()
    code = (
        "import uvicorn; from sharelock.sandbox import create_sandbox_app; "
        f"uvicorn.run(create_sandbox_app(), host='127.0.0.1', port={port}, "
        "log_level='warning', access_log=False)"
    )
    child = Child("sandbox", [sys.executable, "-c", code], clean_env(), state / "sandbox.log")
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/", child, timeout=timeout)
    return child, url
