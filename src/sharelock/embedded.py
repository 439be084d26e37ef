"""A private `redis-server` for the embedded setup: `sharelock demo` when `SHARELOCK_REDIS_URL`
is not set, and the tests (`tests/support/redis_server.py`).

The server is configured for what the broker needs of Redis and nothing more:
- loopback only, on a free port (and optionally a unix socket with mode 700);
- no persistence (`save ""`, `appendonly no`): a restart forgets every session, code and token,
  which is what the retention rules want, and nothing personal is ever written to disk;
- `maxmemory 64mb` with `noeviction`: when full, new writes are refused (the broker answers
  503) rather than old sessions silently evicted (checklist case 42);
- a random password, written only to a 0600 config file (not to the command line, which any
  local user can read in `ps`), so other local users cannot read or erase the store.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from sharelock.config import Settings
from sharelock.errors import ConfigError

LOOPBACK = "127.0.0.1"
DEFAULT_MAXMEMORY = "64mb"
STARTUP_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
_PORT_ATTEMPTS = 3
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes on Linux, NUL included
_MEMORY = re.compile(r"[1-9][0-9]*(b|kb|mb|gb)?", re.IGNORECASE)


def find_redis_server(executable: str = "redis-server") -> str:
    """The path of `redis-server`, or a `ConfigError` saying how to get one."""
    path = shutil.which(executable)
    if path is None:
        raise ConfigError(
            f"{executable} is not installed: install it (Debian/Ubuntu: 'apt-get install "
            "redis-server', or run 'make demo' which does), or set SHARELOCK_REDIS_URL to a "
            "running Redis"
        )
    return path


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on right now. Another process could take it before redis-server
    binds it; `EmbeddedRedis.start` then tries another one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _quote(value: str) -> str:
    """A value for redis.conf. Redis unquotes "..." with C-style escapes; refusing the few
    characters that would need them keeps this function obviously right."""
    if any(c in value for c in '"\\\r\n\0'):
        raise ConfigError(f"unsupported character in redis setting {value!r}")
    return f'"{value}"'


def _resp(*parts: str) -> bytes:
    out = f"*{len(parts)}\r\n"
    for part in parts:
        out += f"${len(part.encode())}\r\n{part}\r\n"
    return out.encode()


def _answers(port: int, password: str, timeout: float = 0.5) -> bool:
    """True once the server authenticates and answers PING (it may still be loading)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(_resp("AUTH", password) + _resp("PING"))
            reply = b""
            while b"\r\n" not in reply.partition(b"\r\n")[2] and len(reply) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(b"+OK\r\n+PONG\r\n")
    except OSError:
        return False


class EmbeddedRedis:
    """One private `redis-server` process, with its directory, port and password.

    `start()` may be called again after `stop()` or `kill()`: the server comes back on the same
    port with the same password (and, without persistence, empty), so clients holding the URL
    reconnect. Use as a context manager to stop it at the end of a block."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        maxmemory: str = DEFAULT_MAXMEMORY,
        unix_socket: bool = False,
        extra_config: Mapping[str, str] | None = None,
        executable: str = "redis-server",
    ) -> None:
        if not _MEMORY.fullmatch(maxmemory):
            raise ConfigError(f"maxmemory {maxmemory!r} is not a size such as 64mb")
        self._executable = executable
        self._directory = directory.resolve()
        self._port = port
        self._fixed_port = port is not None
        self._maxmemory = maxmemory
        self._unix_socket = unix_socket
        self._extra = dict(extra_config or {})
        self._password = secrets.token_hex(24)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        return f"EmbeddedRedis(port={self._port}, pid={self.pid}, directory={self._directory})"

    # -- where it is --------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        """`redis://` URL with the password: treat it as a secret (do not log it)."""
        return f"redis://:{self._password}@{LOOPBACK}:{self.port}/0"

    @property
    def socket_path(self) -> Path:
        return self._directory / "redis.sock"

    @property
    def unix_url(self) -> str:
        if not self._unix_socket:
            raise RuntimeError("the server was not asked for a unix socket")
        return f"unix://:{self._password}@{self.socket_path}?db=0"

    @property
    def log_path(self) -> Path:
        return self._directory / "redis.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> Self:
        """Start the server and wait until it answers; `ConfigError` if it cannot."""
        if self.running:
            return self
        executable = find_redis_server(self._executable)
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._unix_socket and len(str(self.socket_path)) > _UNIX_PATH_MAX:
            raise ConfigError(
                f"unix socket path too long ({len(str(self.socket_path))} > {_UNIX_PATH_MAX}"
                " bytes): use a shorter state directory or TCP"
            )
        for _ in range(1 if self._fixed_port else _PORT_ATTEMPTS):
            if not self._fixed_port:
                self._port = free_port()
            if self._launch(executable, timeout):
                self._fixed_port = True  # a restart comes back where clients expect it
                return self
            if not self._fixed_port and "in use" in self._log_tail():
                continue  # lost the race for the port: try another
            break
        raise ConfigError(
            f"redis-server did not start on {LOOPBACK}:{self._port}; its log "
            f"({self.log_path}) ends with: {self._log_tail()}"
        )

    def _launch(self, executable: str, timeout: float) -> bool:
        config = self._directory / "redis.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(self._config_text())
        self._close_log()
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(  # fixed executable and arguments
            [executable, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self._directory,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _answers(self.port, self._password):
                return True
            time.sleep(0.02)
        self._terminate(kill=True)
        return False

    def _config_text(self) -> str:
        settings: dict[str, str] = {
            "bind": LOOPBACK,
            "port": str(self.port),
            "protected-mode": "yes",
            "daemonize": "no",
            "save": "",
            "appendonly": "no",
            "dir": str(self._directory),
            "logfile": "",  # stdout, which is the log file
            "maxmemory": self._maxmemory,
            "maxmemory-policy": "noeviction",
            "requirepass": self._password,
        }
        if self._unix_socket:
            settings["unixsocket"] = str(self.socket_path)
            settings["unixsocketperm"] = "700"
        settings.update(self._extra)
        return "".join(f"{name} {_quote(value)}\n" for name, value in settings.items())

    def _log_tail(self, limit: int = 600) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return text[-limit:].strip() or "(empty log)"

    def _terminate(self, *, kill: bool, timeout: float = STOP_TIMEOUT_S) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            if kill:
                process.kill()
            else:
                # SIGCONT first: a paused (SIGSTOPped) server would never handle SIGTERM.
                process.send_signal(signal.SIGCONT)
                process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Shut the server down (SIGTERM, then SIGKILL after `timeout`). Idempotent."""
        self._terminate(kill=False, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: the server dies without any shutdown step, as in a crash."""
        self._terminate(kill=True)

    def send_signal(self, signum: int) -> None:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("the server is not running")
        self._process.send_signal(signum)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def redis_url_for(settings: Settings) -> Iterator[str | None]:
    """The Redis URL to use: `SHARELOCK_REDIS_URL` if set, None if Sentinels are set
    (`SHARELOCK_REDIS_SENTINELS`: the broker asks them), otherwise that of a private
    redis-server under the state directory, running until the block ends."""
    if settings.redis_configured:
        yield settings.redis_url
        return
    with EmbeddedRedis(settings.state_path / "redis") as server:
        yield server.url
