"""The ASGI application: thin routes over the broker's packages."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sharelock import __version__
from sharelock.accounts import sync_forever
from sharelock.clock import SYSTEM_CLOCK, Clock
from sharelock.config import Settings, load_settings
from sharelock.connectors import Connector
from sharelock.db import migrate
from sharelock.flow import sweep_forever
from sharelock.keys import KeyLayer, refresh_forever
from sharelock.retention import retention_forever
from sharelock.web import (
    account_page,
    account_routes,
    audit_routes,
    consent_page,
    consent_routes,
    discovery,
    errors,
    health,
    metrics,
    oauth_routes,
    partner_rights_routes,
    remember_routes,
    rights_requests_routes,
    rights_routes,
    throttle,
)
from sharelock.web.access_log import AccessLog
from sharelock.web.deps import Broker
from sharelock.web.forms import BodyTooLarge
from sharelock.webhooks import webhooks_forever

log = logging.getLogger("sharelock.web")
# How long each shutdown step (background jobs, then the broker's connections) may take.
SHUTDOWN_STEP_S = 5.0

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
_RAW_SECURITY_HEADERS = tuple(
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in _SECURITY_HEADERS.items()
)
MAX_BODY_BYTES = 80 * 1024  # a 64 KiB envelope plus its JSON wrapping


# Identity verification's images (`consent_routes`): a few JWEs of `max_image_envelope_bytes`.
IMAGE_BODY_PATH = re.compile(r"/api/flows/[^/]+/identity/(document|frames)")
IMAGES_PER_BODY = 4


class BodyLimit:
    """Refuse oversized bodies with 413 before any route reads them; the identity images'
    routes have a larger limit (`image_limit`), and only they."""

    def __init__(self, app: ASGIApp, limit: int, image_limit: int | None = None) -> None:
        self.app = app
        self.limit = limit
        self.image_limit = image_limit or limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.image_limit if IMAGE_BODY_PATH.fullmatch(scope["path"]) else self.limit
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            response = errors.error_response(413, "invalid_request", "request body too large")
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge("request body too large")
            return message

        await self.app(scope, limited, send)


class App(FastAPI):
    """FastAPI with the access log as its outermost layer, outside even Starlette's error
    middleware (which `add_middleware` cannot reach): the 500 answers that middleware makes, and
    the line it logs, then carry the request id too."""

    def build_middleware_stack(self) -> ASGIApp:
        return AccessLog(super().build_middleware_stack())


class SecurityHeaders:
    """Pure ASGI middleware: the security headers on every answer, unless the route set its
    own (the consent page's CSP). No per-request task, unlike `@app.middleware("http")`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = message.setdefault("headers", [])
                present = {name.lower() for name, _ in raw}
                # Appended as raw pairs (what `MutableHeaders` does, without its per-header
                # scans of the list): only the ones the route did not set itself.
                message["headers"] = list(raw) + [
                    pair for pair in _RAW_SECURITY_HEADERS if pair[0] not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(
    settings: Settings | None = None,
    keys: KeyLayer | None = None,
    connectors: dict[str, Connector] | None = None,
    *,
    clock: Clock = SYSTEM_CLOCK,
) -> FastAPI:
    """Build the broker's app. Keys, Redis and the database are opened in the lifespan, that
    is in the serving process itself (after any fork), never at import. `clock` is the
    broker's time (`sharelock.clock`): tests move it instead of sleeping."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        layer = keys or KeyLayer(settings)
        broker = Broker.assemble(settings, layer, connectors, clock=clock)
        # Start-up brings the schema up to date (idempotent; `sharelock serve` already did
        # once before forking its workers, so they only find it current).
        migrate(broker.engine)
        app.state.broker = broker
        observed: metrics.Metrics = app.state.metrics
        observed.watch_hsm(lambda: layer.token.calls)
        broker.limiter.on_refusal.append(observed.refused)
        broker.consent.collection.on_collection.append(observed.collection)
        broker.delivery.on_delivery.append(observed.delivered)
        jobs = [
            asyncio.create_task(
                sweep_forever(
                    broker.store, broker.audit, settings.expiry_sweep_seconds, broker.clock
                )
            ),
            asyncio.create_task(retention_forever(broker.engine, layer, settings)),
            asyncio.create_task(refresh_forever(layer, settings.key_refresh_seconds)),
        ]
        if broker.accounts.available:
            every = timedelta(seconds=settings.account_sync_interval_seconds)
            jobs.append(asyncio.create_task(sync_forever(broker.remembered.sync, every)))
        if settings.webhook_enabled and broker.webhooks is not None:
            jobs.append(
                asyncio.create_task(
                    webhooks_forever(broker.webhooks, settings.webhook_interval_seconds)
                )
            )
        try:
            yield
        finally:
            # Bounded: a job stuck in a call that does not heed cancellation, or a backing
            # service that does not answer its close, must not keep the worker from exiting.
            for job in jobs:
                job.cancel()
            _, stuck = await asyncio.wait(jobs, timeout=SHUTDOWN_STEP_S)
            if stuck:
                log.warning("%d background job(s) still running at shutdown", len(stuck))
            try:
                await asyncio.wait_for(broker.close(), SHUTDOWN_STEP_S)
            except TimeoutError:
                log.warning("the broker's connections were not closed in %s s", SHUTDOWN_STEP_S)
            if keys is None:
                layer.close()

    app = App(
        title="Sharelock", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    # Innermost of the middlewares: a refused request still gets the security headers and is
    # counted in the metrics, and nothing behind it (routing, body parsing) runs for it.
    app.add_middleware(throttle.AddressLimits, trusted_proxies=settings.trusted_proxies)
    app.add_middleware(SecurityHeaders)
    app.state.metrics = metrics.Metrics()
    app.add_middleware(metrics.Observe)
    app.add_middleware(
        BodyLimit,
        limit=MAX_BODY_BYTES,
        image_limit=settings.max_image_envelope_bytes * IMAGES_PER_BODY + MAX_BODY_BYTES,
    )
    errors.install(app, on_auth_failure=throttle.record_failed_auth)
    app.include_router(discovery.router)
    app.include_router(health.router)  # `/metrics` is on the operator listener only
    app.include_router(oauth_routes.router)
    app.include_router(consent_routes.router)
    app.include_router(remember_routes.router)
    app.include_router(consent_page.router)
    app.include_router(audit_routes.router)
    app.include_router(rights_routes.router)
    app.include_router(rights_requests_routes.router)
    app.include_router(partner_rights_routes.router)
    account_routes.install(app)
    app.include_router(account_page.router)
    static = resources.files("sharelock.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app


def create_operator_app(public: FastAPI) -> FastAPI:
    """`/metrics`, `/healthz` and `/readyz` for the operator's listener, over the public app's
    state: its broker (set by the public app's lifespan, the only lifespan that runs) and its
    metrics. Only meant to be served beside `public`, in the same process."""
    operator = App(title="Sharelock operator", version=__version__, docs_url=None, redoc_url=None)
    operator.state = public.state
    operator.add_middleware(SecurityHeaders)
    errors.install(operator)
    operator.include_router(health.router)
    operator.include_router(metrics.router)
    return operator


class Listeners:
    """One ASGI app for two listening sockets: requests that arrived on the operator's port go
    to the operator app, everything else to the public app (so an unknown local address can
    only ever reach the public routes); lifespan events go to the public app alone.

    `sharelock serve` binds both sockets itself and hands them to uvicorn, which serves every
    socket in every worker process: each worker has one broker (one HSM session) and answers
    on both listeners. The local port (`scope["server"]`) is the socket the connection came in
    on, whatever a proxy says in its headers."""

    def __init__(self, public: ASGIApp, operator: ASGIApp, operator_port: int) -> None:
        self.public = public
        self.operator = operator
        self.operator_port = operator_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") if scope["type"] in ("http", "websocket") else None
        if server is not None and server[1] == self.operator_port:
            await self.operator(scope, receive, send)
        else:
            await self.public(scope, receive, send)


def create_listeners(
    settings: Settings,
    keys: KeyLayer | None = None,
    connectors: dict[str, Connector] | None = None,
) -> Listeners:
    """The public app and its operator app behind one `Listeners` (what `serve` runs)."""
    public = create_app(settings, keys, connectors)
    return Listeners(public, create_operator_app(public), settings.operator_port)


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers: each worker builds its own app.
    The public routes only: `/metrics` needs `create_listeners_from_env` and a second socket."""
    return create_app()


def create_listeners_from_env() -> Listeners:
    """The factory `sharelock serve` gives uvicorn: each worker process builds its own apps
    from the environment (its settings, and the Redis URL `serve` put there)."""
    return create_listeners(load_settings())
