"""Where async code hands synchronous database work to a thread: `run_blocking`, and only here.

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

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid = -1


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Await `fn(*args, **kwargs)` run on the database thread pool; its exception, if any,
    is raised here. Context variables (the log context) go along, as with `to_thread`."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    # Submitted under the lock, so that a concurrent `shutdown` cannot close the pool between
    # taking it and submitting to it.
    with _lock:
        future = loop.run_in_executor(_pool(), call)
    return await future


def _pool() -> ThreadPoolExecutor:
    """The process's pool, created on first use (and again in a forked child, which inherits
    the object but not its threads, and after a `shutdown`). Call with `_lock` held."""
    global _executor, _executor_pid
    if _executor is None or _executor_pid != os.getpid():
        _executor = ThreadPoolExecutor(
            max_workers=DEFAULT_WORKERS, thread_name_prefix=THREAD_NAME_PREFIX
        )
        _executor_pid = os.getpid()
    return _executor


def shutdown(*, wait: bool = True) -> None:
    """Close the pool (the broker's close): calls already submitted finish (with `wait`, before
    this returns) and nothing is cancelled: an audit row being written is still written. A
    later `run_blocking` starts a new pool, as a new broker in the same process needs."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
        mine = _executor_pid == os.getpid()
    if executor is not None and mine:
        executor.shutdown(wait=wait)
