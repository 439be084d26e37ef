"""The one thread where documents are checked and drawn.

PDFium is not thread-safe: two calls into it at once, from any two threads of the process,
may corrupt its state. Every use of it holds `PDFIUM_LOCK`, and async code hands document
work to this module's single thread (`in_documents_thread`) rather than to a shared pool, so a
long check or drawing never takes a thread that database or HSM work is waiting for, and never
runs beside another one.
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

PDFIUM_LOCK = threading.Lock()
"""Held around every call into PDFium, whatever the thread."""

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid = -1


async def in_documents_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Await `fn(*args, **kwargs)` run on the documents thread."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    with _lock:
        future = loop.run_in_executor(_pool(), call)
    return await future


def _pool() -> ThreadPoolExecutor:
    """The process's thread, made on first use (and again in a forked child, which inherits
    the object but not its thread). Call with `_lock` held."""
    global _executor, _executor_pid
    if _executor is None or _executor_pid != os.getpid():
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sharelock-documents")
        _executor_pid = os.getpid()
    return _executor
