"""Where async code hands synchronous work to threads of its own: `run_blocking` for the
database, and `DedicatedThreads` for any other kind of work that needs its own (documents,
identity verification).

The engine, the registry, the audit trail and the maintenance vault are synchronous
SQLAlchemy code; the web layer and the background jobs await them through `run_blocking`,
which runs them on a thread pool of their own. Not on the event loop's default executor (what
`asyncio.to_thread` uses): that pool is shared by everything in the process, and small
(`min(32, cores + 4)`). The abuse issue saw wrong client secrets, hashed on that shared pool,
slow down requests that had nothing to do with them: any CPU-bound or stuck caller there
makes database work queue behind it. With its own bounded pool, database
work neither waits behind other users nor starves them.

HSM work is not database work: it goes through `KeyLayer.run_async`, the key layer's single
HSM thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# As many threads as the engine has connections (SQLAlchemy's default pool: 5, plus 10 of
# overflow): every database thread can get a connection at once, and a thread beyond that
# would only wait inside the pool, where a 30 s wait ends in an error, instead of here.
DEFAULT_WORKERS = 15
THREAD_NAME_PREFIX = "sharelock-db"


class DedicatedThreads:
    """A thread pool for one kind of work, created on first use (and again in a forked child,
    which inherits the object but not its threads, and after a `shutdown`). Calls carry the
    caller's context variables (the log context), as `asyncio.to_thread` does."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = -1

    def __repr__(self) -> str:
        return f"DedicatedThreads({self.name!r}, {self.workers})"

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await `fn(*args, **kwargs)` run on these threads; its exception, if any, is raised
        here."""
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        # Submitted under the lock, so that a concurrent `shutdown` cannot close the pool
        # between taking it and submitting to it.
        with self._lock:
            future = loop.run_in_executor(self._pool(), call)
        return await future

    def _pool(self) -> ThreadPoolExecutor:
        """Call with `_lock` held."""
        if self._executor is None or self._pid != os.getpid():
            self._executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix=self.name
            )
            self._pid = os.getpid()
        return self._executor

    def shutdown(self, *, wait: bool = True) -> None:
        """Close the pool: calls already submitted finish (with `wait`, before this returns)
        and nothing is cancelled. A later `run` starts a new pool."""
        with self._lock:
            executor, self._executor = self._executor, None
            mine = self._pid == os.getpid()
        if executor is not None and mine:
            executor.shutdown(wait=wait)


_DATABASE = DedicatedThreads(THREAD_NAME_PREFIX, DEFAULT_WORKERS)


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Await `fn(*args, **kwargs)` run on the database thread pool; its exception, if any,
    is raised here. Context variables (the log context) go along, as with `to_thread`."""
    return await _DATABASE.run(fn, *args, **kwargs)


def shutdown(*, wait: bool = True) -> None:
    """Close the database pool (the broker's close): calls already submitted finish (with
    `wait`, before this returns) and nothing is cancelled: an audit row being written is still
    written. A later `run_blocking` starts a new pool, as a new broker in the same process
    needs."""
    _DATABASE.shutdown(wait=wait)
