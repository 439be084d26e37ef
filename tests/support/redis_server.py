"""A real `redis-server` for the tests, on a free loopback port, hermetic (own directory, no
persistence, random password), which tests may kill, pause (SIGSTOP) and restart.

It is `sharelock.embedded.EmbeddedRedis` (the launcher the demo uses) plus the fault controls:

    with RedisServer(tmp_path / "redis") as server:
        store = SealedStore(connect(server.url), Sealer(key_layer), max_lifetime=...)
        server.pause()      # SIGSTOP: connections hang, commands time out
        server.resume()
        server.kill()       # SIGKILL: connections refused
        server.restart()    # same port and password, empty (no persistence)

As a session fixture (tests/conftest.py):

    @pytest.fixture(scope="session")
    def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
        with RedisServer(tmp_path_factory.mktemp("redis")) as server:
            yield server

Tests that kill or pause a server should start their own (it takes ~20 ms) rather than the
session's, so that a failure cannot leave the next test without Redis.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from sharelock.embedded import DEFAULT_MAXMEMORY, EmbeddedRedis


class RedisServer(EmbeddedRedis):
    """An `EmbeddedRedis` with the controls fault-injection tests need."""

    def __init__(self, directory: Path, *, maxmemory: str = DEFAULT_MAXMEMORY, **kwargs: Any):
        super().__init__(directory, maxmemory=maxmemory, **kwargs)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but nothing is answered."""
        self.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.send_signal(signal.SIGCONT)
        self.paused = False

    @contextmanager
    def paused_for_block(self) -> Iterator[None]:
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def restart(self) -> None:
        """Stop and start again: same port and password, and (no persistence) empty."""
        self.stop()
        self.paused = False
        self.start()

    def kill(self) -> None:
        super().kill()
        self.paused = False

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        self.paused = False

    def raw_client(self, *, socket_timeout: float = 2.0) -> redis.Redis:
        """A plain synchronous client, for looking at what Redis really holds."""
        return redis.Redis.from_url(
            self.url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def flush(self) -> None:
        with self.raw_client() as client:
            client.flushall()
