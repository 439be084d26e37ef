"""The one thread where documents are checked and drawn.

PDFium is not thread-safe: two calls into it at once, from any two threads of the process,
may corrupt its state. Every use of it holds `PDFIUM_LOCK`, and async code hands document
work to this module's single thread (`in_documents_thread`) rather than to a shared pool, so a
long check or drawing never takes a thread that database or HSM work is waiting for, and never
runs beside another one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sharelock.blocking import DedicatedThreads

P = ParamSpec("P")
T = TypeVar("T")

PDFIUM_LOCK = threading.Lock()
"""Held around every call into PDFium, whatever the thread."""

_THREAD = DedicatedThreads("sharelock-documents", 1)


async def in_documents_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Await `fn(*args, **kwargs)` run on the documents thread."""
    return await _THREAD.run(fn, *args, **kwargs)
