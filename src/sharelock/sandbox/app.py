"""The sandbox ASGI app: the four portals, an index page and the control endpoint.

`create_sandbox_app` is what tests serve on a loopback port; `run_sandbox` is what
`sharelock sandbox` runs. The control endpoint (`POST /_control/{source}`) switches a whole
source down, slow or garbled, or revokes all its device tokens, so that partners and tests can
see how the broker reports it; it has no authentication because the sandbox is a test double
serving fictitious people only and must never hold real data.
"""

from __future__ import annotations

import json
from importlib.resources import files

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sharelock.clock import SYSTEM_CLOCK, Clock
from sharelock.sandbox.portal import portal_router
from sharelock.sandbox.sources import SOURCES, find_source
from sharelock.sandbox.state import Mode, SandboxState
from sharelock.sandbox.web import page
from sharelock.sandbox.webhooks import webhook_router

DEFAULT_SLOW_SECONDS = 30.0

_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
}
_CSS = files("sharelock.sandbox").joinpath("static/sandbox.css").read_bytes()


class _SecurityHeaders:
    """Adds the security headers to every answer. A plain ASGI middleware on purpose: Starlette's
    `BaseHTTPMiddleware` wraps `receive` so that a handler can no longer see the client hang up,
    and the slow paths rely on seeing it to stop waiting for a client that gave up."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self._app(scope, receive, send_with_headers)


def _json_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def create_sandbox_app(
    slow_seconds: float = DEFAULT_SLOW_SECONDS, *, clock: Clock = SYSTEM_CLOCK
) -> FastAPI:
    """A fresh sandbox: its own sessions, secret and source modes (all sources up).

    `slow_seconds` is how long the `slow` users and a source in slow mode make the client wait;
    tests pass a few seconds, the default makes any sensible connector time out. `clock` dates
    device tokens (90 days); tests pass one they move."""
    if slow_seconds < 0:
        raise ValueError("slow_seconds must not be negative")
    state = SandboxState(slow_seconds=slow_seconds, clock=clock)
    app = FastAPI(
        title="Sharelock sandbox data sources",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.sandbox = state

    app.add_middleware(_SecurityHeaders)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        modes = {key: state.mode(key).value for key in SOURCES}
        return page("index.html", page="index", sources=list(SOURCES.values()), modes=modes)

    @app.get("/_static/sandbox.css", include_in_schema=False)
    async def stylesheet() -> Response:
        return Response(_CSS, media_type="text/css")

    @app.get("/_control")
    async def control_status() -> JSONResponse:
        return JSONResponse({"sources": {s.id: state.mode(s.key).value for s in SOURCES.values()}})

    @app.post("/_control/{name}")
    async def control(name: str, request: Request) -> JSONResponse:
        """Set a whole source's mode, {"mode": "up" | "down" | "slow" | "garbage"}, and/or
        revoke all its device tokens, {"revoke_device_tokens": true}."""
        source = find_source(name)
        if source is None:
            return _json_error(404, "not_found", "no such sandbox source")
        try:
            body = json.loads(await request.body())
            mode = Mode(body["mode"]) if "mode" in body else None
            revoke = body.get("revoke_device_tokens", False)
            if not isinstance(revoke, bool) or (mode is None and not revoke):
                raise ValueError
        except (ValueError, TypeError, AttributeError):
            allowed = ", ".join(m.value for m in Mode)
            return _json_error(
                400,
                "invalid_request",
                f'expected {{"mode": one of {allowed}}} and/or {{"revoke_device_tokens": true}}',
            )
        answer: dict[str, object] = {"source": source.id}
        if mode is not None:
            state.modes[source.key] = mode
            answer["mode"] = mode.value
        if revoke:
            answer["revoked_device_tokens"] = state.devices.revoke_source(source.key)
        return JSONResponse(answer)

    for source in SOURCES.values():
        app.include_router(portal_router(source, state))
    # A partner's webhook endpoint, for the demo partner and the tests (sandbox/webhooks.py).
    app.include_router(webhook_router())
    return app


def run_sandbox(
    host: str = "127.0.0.1", port: int = 8100, *, slow_seconds: float = DEFAULT_SLOW_SECONDS
) -> None:
    """Serve the sandbox until interrupted (what `sharelock sandbox` runs). Access logs show
    paths only: the portals take credentials in POST bodies, never in URLs."""
    uvicorn.run(create_sandbox_app(slow_seconds), host=host, port=port, log_level="info")
