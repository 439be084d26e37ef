"""The ASGI application: thin routes over the key layer and (later) the flow services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from sharelock import __version__
from sharelock.config import Settings, load_settings
from sharelock.keys import KeyLayer
from sharelock.web import discovery, errors, health
from sharelock.web.deps import Broker

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def create_app(settings: Settings | None = None, keys: KeyLayer | None = None) -> FastAPI:
    """Build the broker's app. The key layer is opened in the lifespan, that is in the serving
    process itself (after any fork), never at import."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        layer = keys or KeyLayer(settings)
        app.state.broker = Broker(settings=settings, keys=layer)
        try:
            yield
        finally:
            if keys is None:
                layer.close()

    app = FastAPI(
        title="Sharelock",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    errors.install(app)
    app.include_router(discovery.router)
    app.include_router(health.router)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` with several workers: each worker builds its own app."""
    return create_app()
