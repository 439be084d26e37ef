"""One access-log line per request, and a request id on every log line of that request.

The line says what an operator needs and nothing a partner or a person sent:

    {"logger": "sharelock.access", "event": "request", "request_id": "…", "method": "GET",
     "route": "/consent/{flow_id}", "status": 200, "duration_ms": 12.3}

`route` is the matched route's *template*, never the path (paths carry flow ids), and there is
no query string (partners have put access tokens there), no header and no client address.
Unmatched paths are logged as `unmatched`.

The request id is the caller's `X-Request-Id` only when it is short and plain (so that a
partner can correlate its own logs with ours, but cannot write arbitrary text into them);
otherwise a random one. It is returned in the `X-Request-Id` response header.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("sharelock.access")

RECEIVED_AT = "received_at"  # key in the request state: arrival time (Unix seconds)
HEADER = "X-Request-Id"
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9-]{8,64}")
# Any other method is logged as OTHER: a method is free text on the wire.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's request id if it matches `[A-Za-z0-9-]{8,64}`, else a new random one."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            candidate = value.decode("latin-1")
            if _ACCEPTED_ID.fullmatch(candidate):
                return candidate
            break
    # 128 random bits, hex: as unique as a UUID, without building one per request.
    return secrets.token_hex(16)


def route_template(scope: Scope) -> str:
    """The matched route's template (Starlette records the route in the scope once routed)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class AccessLog:
    """ASGI middleware; it must be the outermost layer of an app, so that the 500 answers made
    by Starlette's error middleware, and what that middleware logs, carry the request id too
    (`sharelock.web.app.App` puts it there)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # When the request reached the broker, before any middleware waits on Redis or the
        # database: the token endpoint tells a parallel duplicate from a replay by it.
        scope.setdefault("state", {})[RECEIVED_AT] = time.time()
        request_id = request_id_from(scope["headers"])
        status = 500  # if the app fails before it answers, the server answers 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                method = scope["method"] if scope["method"] in METHODS else "OTHER"
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route_template(scope),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
