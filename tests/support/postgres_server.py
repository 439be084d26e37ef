"""A private PostgreSQL server for tests: password authentication (SCRAM-SHA-256) and TLS
only, on a free loopback port, which tests may pause (SIGSTOP), kill and restart.

    ca = PrivateCA(tmp_path / "ca")
    with PrivatePostgres(tmp_path / "pg", ca=ca) as server:
        engine = create_engine_for(server.url)   # verify-full against the CA, password in it
        server.pause()                            # every server process stopped
        server.resume()
        server.kill()                             # SIGKILL, as a crash
        server.start()                            # same port, password and data

It is set up the way an operator should set up production, so that the broker is tested
against what it will meet: `pg_hba.conf` has `hostssl` lines only for TCP (a client that
does not ask for TLS is refused), the server's certificate comes from the test CA, and the
application role `sharelock` (random password, owner of the database `sharelock`) is not a
superuser. Neither password is ever printed: not in `repr`, not in a log line, and the
application role's password is set from a SCRAM verifier computed here, so not even the
server's own log can quote it.

PostgreSQL refuses to run as root. When the tests run as root, initdb and the server run as
the `postgres` user (or `nobody`), and their files live in a temporary directory of their own
that this user can reach: pytest's temporary directories sit below a root-only (0700)
directory, which the server's user could not traverse.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from tests.support.pki import PrivateCA

APP_ROLE = "sharelock"
APP_DATABASE = "sharelock"
SUPERUSER = "postgres"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
_SCRAM_ITERATIONS = 4096
# A unix socket's path must fit in `sun_path` (108 bytes): the socket gets a short directory.
_SOCKET_PREFIX = "slpg-"


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """The directory of `initdb` and `postgres`: Debian's newest /usr/lib/postgresql/*/bin,
    else `pg_config --bindir`, else the PATH."""
    candidates = []
    for found in glob.glob("/usr/lib/postgresql/*/bin"):
        version = Path(found).parent.name
        if version.isdigit() and (Path(found) / "initdb").is_file():
            candidates.append((int(version), Path(found)))
    if candidates:
        return max(candidates)[1]
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if bindir and (Path(bindir) / "initdb").is_file():
            return Path(bindir)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresNotFound("no PostgreSQL server binaries (initdb, postgres) on this machine")


def scram_verifier(password: str, *, iterations: int = _SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677), so that
    `CREATE ROLE … PASSWORD` carries a hash and never the password itself. (SASLprep is the
    identity for the ASCII passwords made here.)"""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _descendants(root: int) -> set[int]:
    """Every live process below `root`, from /proc (this kernel may lack
    /proc/<pid>/task/<tid>/children, so the parent links are read from each stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(int(entry))
            if stat is not None and stat[0] not in ("Z", "X"):
                parents.setdefault(stat[1], []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _signal(pids: set[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile: nothing to signal
            os.kill(pid, signum)


def _wait_until(done: Callable[[], bool], deadline: float, what: str) -> None:
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL test server: timed out waiting until {what}")
        time.sleep(0.01)


class PrivatePostgres:
    """A PostgreSQL server of its own, initialised on first `start()` (or on entering the
    `with` block) and removed on leaving it."""

    def __init__(self, directory: Path, *, ca: PrivateCA | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._ca = ca
        self._bindir = find_bindir()
        self._user = self._server_user()
        # Created on first start: see the module's docstring for why root gets a temp dir.
        self._own_dirs: list[Path] = []
        self._root: Path | None = None
        self._socket_dir: Path | None = None
        self.port = _free_port()
        self._superuser_password = secrets.token_urlsafe(24)
        self._password = secrets.token_urlsafe(24)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self.paused = False

    # -- what clients use -----------------------------------------------------------------

    @property
    def ca_cert(self) -> Path:
        if self._ca is None:
            raise RuntimeError("the server has no CA before its first start")
        return self._ca.ca_cert

    @property
    def url(self) -> str:
        """The application role's SQLAlchemy URL: TLS verified against the CA (host name
        included: `verify-full`), password included. Pass it on, never print it."""
        return self._url(self._password).render_as_string(hide_password=False)

    def url_with(self, *, password: str | None = None, **query: str) -> str:
        """The URL with another password or other connection parameters (e.g.
        `sslmode="disable"`), for tests of refusals."""
        url = self._url(self._password if password is None else password)
        return url.update_query_dict(query).render_as_string(hide_password=False)

    def _url(self, password: str) -> URL:
        return URL.create(
            "postgresql+psycopg",
            username=APP_ROLE,
            password=password,
            host="127.0.0.1",
            port=self.port,
            database=APP_DATABASE,
            query={"sslmode": "verify-full", "sslrootcert": str(self.ca_cert)},
        )

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError("the PostgreSQL test server is not running")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __repr__(self) -> str:
        state = "paused" if self.paused else ("running" if self.running else "stopped")
        return f"PrivatePostgres(port={self.port}, {state}, directory={str(self.directory)!r})"

    # -- life cycle -----------------------------------------------------------------------

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server and delete its files."""
        try:
            self.stop()
        finally:
            for own in self._own_dirs:
                shutil.rmtree(own, ignore_errors=True)
            self._own_dirs.clear()

    def start(self) -> None:
        """Start the server (initialising it the first time); returns once it accepts
        connections. A restart keeps the port, the passwords and the data."""
        if self.running:
            return
        first = self._root is None
        if first:
            self._initdb()
        assert self._root is not None
        data = self._root / "data"
        self._log = self._root / "server.log"
        # A stale postmaster.pid from a kill is handled by the server itself (its pid is gone).
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self._bindir / "postgres"), "-D", str(data)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._root,
                env=self._env(),
                # Its own session: a Ctrl-C in the terminal reaches pytest, not the server.
                start_new_session=True,
                **self._run_as(),
            )
        self.paused = False
        self._wait_ready(data / "postmaster.pid", time.monotonic() + START_TIMEOUT_S)
        if first:
            self._bootstrap()

    def stop(self) -> None:
        """Fast shutdown (SIGINT: open transactions are rolled back); SIGKILL if it hangs."""
        if self._process is None:
            return
        if self._process.poll() is None:
            if self.paused:
                self.resume()
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._process = None
        self.paused = False

    def kill(self) -> None:
        """SIGKILL to the postmaster and every child, as a crash (or a power cut for what
        was not yet flushed); `start()` then runs crash recovery from the WAL."""
        if self._process is None:
            return
        postmaster = self._process.pid
        # Listed before the postmaster dies: afterwards its children belong to init.
        children = _descendants(postmaster)
        _signal({postmaster, *children}, signal.SIGKILL)
        self._process.wait(timeout=STOP_TIMEOUT_S)
        # Children left alive would keep the shared memory attached, and the next postmaster
        # would refuse to start; a zombie (not reaped by init yet) counts as gone.
        _wait_until(
            lambda: all(_is_dead(pid) for pid in children),
            time.monotonic() + STOP_TIMEOUT_S,
            "the killed server's processes are gone",
        )
        self._process = None
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP to the postmaster *and* each of its children; returns once all are stopped.

        Both, because stopping only the postmaster leaves the backends of open connections
        answering queries (each connection has its own process), and stopping only the
        backends leaves the postmaster accepting connections and forking fresh backends that
        would serve them. Not through the process group: every PostgreSQL child calls
        `setsid()` (InitPostmasterChild), so it is in a group of its own, out of reach of
        `killpg` on the postmaster's; the children are found in /proc instead. The postmaster
        is stopped first, so that no child can be forked after the listing."""
        postmaster = self.pid
        deadline = time.monotonic() + STOP_TIMEOUT_S
        os.kill(postmaster, signal.SIGSTOP)
        _wait_until(lambda: _is_stopped(postmaster), deadline, "the postmaster is stopped")
        stopped: set[int] = set()
        while True:
            fresh = _descendants(postmaster) - stopped
            if not fresh:
                break
            _signal(fresh, signal.SIGSTOP)
            stopped |= fresh
        _wait_until(
            lambda: all(_is_stopped(pid) or _is_dead(pid) for pid in stopped),
            deadline,
            "every server process is stopped",
        )
        self.paused = True

    def resume(self) -> None:
        """SIGCONT to the children, then the postmaster (it may fork again from then on)."""
        postmaster = self.pid
        _signal(_descendants(postmaster), signal.SIGCONT)
        os.kill(postmaster, signal.SIGCONT)
        self.paused = False

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log (it never holds a password: see the module doc)."""
        if self._log is None or not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    # -- setting up ---------------------------------------------------------------------

    @staticmethod
    def _server_user() -> pwd.struct_passwd | None:
        """The unprivileged user to run as when we are root; None to run as ourselves."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise PostgresNotFound("running as root, and no `postgres` or `nobody` user to run as")

    def _run_as(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _env(self) -> dict[str, str]:
        # Nothing from the caller's PG* variables (a PGPASSWORD, a PGDATA) may leak in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "LANG": "C"})
        if self._root is not None:
            env["HOME"] = str(self._root)
        return env

    def _private_dir(self, prefix: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self._own_dirs.append(path)
        self._own(path)
        return path

    def _initdb(self) -> None:
        self._root = (
            self._private_dir("sharelock-pg-") if self._user is not None else self.directory
        )
        self._socket_dir = self._private_dir(_SOCKET_PREFIX)
        if self._ca is None:
            self._ca = PrivateCA(self.directory / "ca")
        issued = self._ca.issue("postgres")
        data = self._root / "data"
        # The superuser's password reaches initdb through a file only it can read, removed
        # at once.
        pwfile = self._root / "pwfile"
        pwfile.touch(mode=0o600)
        pwfile.write_text(self._superuser_password + "\n")
        self._own(pwfile)
        try:
            done = subprocess.run(
                [
                    str(self._bindir / "initdb"),
                    "-D",
                    str(data),
                    "--auth=scram-sha-256",
                    f"--username={SUPERUSER}",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                    # A throw-away cluster: skipping initdb's fsync saves a second or so; the
                    # server itself keeps fsync on.
                    "--no-sync",
                ],
                capture_output=True,
                text=True,
                cwd=self._root,
                env=self._env(),
                check=False,
                **self._run_as(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        for source, name in ((issued.cert, "server.crt"), (issued.key, "server.key")):
            target = data / name
            shutil.copyfile(source, target)
            # The server refuses a key that others can read, or that is not its user's.
            target.chmod(0o600)
            self._own(target)
        # Replaces initdb's rules: the unix socket for the bootstrap, TCP only over TLS.
        # With no `host` line, a client that does not ask for TLS finds no entry and is
        # refused ("no encryption").
        (data / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self._socket_dir}'",
            "unix_socket_permissions": "0700",
            "ssl": "on",
            "ssl_cert_file": "'server.crt'",
            "ssl_key_file": "'server.key'",
            "ssl_min_protocol_version": "'TLSv1.2'",
            "password_encryption": "'scram-sha-256'",
            "max_connections": "50",
            "shared_buffers": "16MB",
            "huge_pages": "off",
            # A failing statement is not echoed into the log (it could be a CREATE ROLE).
            "log_min_error_statement": "panic",
        }
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/support/postgres_server.py\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _wait_ready(self, pidfile: Path, deadline: float) -> None:
        """Until the postmaster says "ready" in postmaster.pid (what `pg_ctl -w` waits for)."""
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL test server exited ({self._process.returncode}) at start:\n"
                    + self.log_tail()
                )
            try:
                lines = pidfile.read_text().splitlines()
            except FileNotFoundError:
                lines = []
            ours = len(lines) >= 8 and lines[0].strip() == str(self._process.pid)
            if ours and lines[7].strip() == "ready":
                return
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError("PostgreSQL test server did not start:\n" + self.log_tail())
            time.sleep(0.02)

    def _bootstrap(self) -> None:
        """The application role and its database, through the superuser's unix socket."""
        with psycopg.connect(
            host=str(self._socket_dir),
            port=self.port,
            dbname="postgres",
            user=SUPERUSER,
            password=self._superuser_password,
            autocommit=True,
            connect_timeout=10,
        ) as admin:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(APP_ROLE), sql.Literal(scram_verifier(self._password))
                )
            )
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(APP_DATABASE), sql.Identifier(APP_ROLE)
                )
            )


def _is_stopped(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] in ("T", "t")


def _is_dead(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is None or stat[0] in ("Z", "X")
