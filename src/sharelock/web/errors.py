"""Typed errors to HTTP answers, in one place.

Bodies follow RFC 6749 (`error`, `error_description`). Descriptions are fixed text chosen here:
an exception's own message (which may name a module path or token label) goes to the operator's
log, never to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sharelock.envelope import EnvelopeRejected
from sharelock.errors import ServiceUnavailable
from sharelock.flow import FlowError
from sharelock.keys import HsmUnavailable, KeyLayerError
from sharelock.oauth import DPoPError, InvalidClient, InvalidToken, OAuthError, dpop_challenge
from sharelock.ratelimit import RateLimited
from sharelock.rights import RightsError
from sharelock.store import SealError
from sharelock.web.forms import BodyTooLarge
from sharelock.web.templates import render

log = logging.getLogger("sharelock.web")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# An error page loads the consent screen's stylesheet and icon, and nothing else.
ERROR_PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def error_response(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
    )


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """A readable page at the broker, for errors that must not be redirected."""
    return HTMLResponse(
        render(request, "error.html", {"message": message, "status": status}),
        status_code=status,
        headers={**NO_STORE, "Content-Security-Policy": ERROR_PAGE_CSP},
    )


LIMITED_PAGE_PREFIXES = ("/authorize", "/consent/", "/rights")
_LIMITED_MESSAGES = {
    "too_many_attempts": "Too many wrong passwords or codes. To protect your account, "
    "Sharelock will not try again for a while. Wait, or choose another service.",
    "rate_limited": "Too many requests from this connection. Wait a few minutes, then try again.",
}


def limited_response(request: Request, exc: RateLimited) -> Response:
    """429 with `Retry-After`: a readable page on the screens, RFC 6749-style JSON elsewhere."""
    headers = {"Retry-After": str(exc.retry_after)}
    if request.method == "GET" and request.url.path.startswith(LIMITED_PAGE_PREFIXES):
        page = error_page(request, 429, _LIMITED_MESSAGES.get(exc.error, exc.description))
        page.headers.update(headers)
        return page
    return error_response(429, exc.error, exc.description, headers)


def unavailable_response(exc: ServiceUnavailable) -> JSONResponse:
    component = "key service" if isinstance(exc, HsmUnavailable) else "a backing service"
    log.error("service unavailable: %s", exc)
    return error_response(
        503,
        "temporarily_unavailable",
        f"{component} is unavailable; nothing was released, try again later",
        {"Retry-After": "5"},
    )


def _body_too_large(exc: BaseException | None) -> bool:
    """`BodyTooLarge`, possibly wrapped in the exception groups of the middleware's tasks."""
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(BodyTooLarge)
        return matched is not None and rest is None
    return isinstance(exc, BodyTooLarge)


AuthFailureHook = Callable[[Request], Awaitable[None]]


async def _ignore(_: Request) -> None:
    return None


def install(app: FastAPI, on_auth_failure: AuthFailureHook = _ignore) -> None:
    """Map every typed error to its answer. `on_auth_failure` is told of each failed client
    or token authentication (the failed-authentication limit counts them)."""

    @app.exception_handler(RateLimited)
    async def _limited(request: Request, exc: RateLimited) -> Response:
        return limited_response(request, exc)

    @app.exception_handler(OAuthError)
    async def _oauth(request: Request, exc: OAuthError) -> JSONResponse:
        if isinstance(exc, InvalidClient | InvalidToken | DPoPError):
            await on_auth_failure(request)
        if isinstance(exc, DPoPError):
            # 400 at /par and /token; at the share endpoint, a protected resource, 401 with a
            # DPoP challenge (RFC 9449 §7.1); the fresh nonce either way, when one is due.
            resource = request.url.path == "/v1/share"
            status = exc.resource_status if resource else exc.status
            headers = exc.response_headers(resource=resource)
            return error_response(status, exc.error, exc.description, headers)
        headers = {}
        if isinstance(exc, InvalidClient) and exc.basic_challenge:
            # RFC 6749 §5.2: the challenge of the method used; a client that authenticated
            # in the body (private_key_jwt, client_secret_post) gets no Basic challenge.
            headers["WWW-Authenticate"] = 'Basic realm="sharelock"'
        elif isinstance(exc, InvalidToken) and exc.scheme == "DPoP":
            headers["WWW-Authenticate"] = dpop_challenge(exc.error, exc.description)
        elif isinstance(exc, InvalidToken):
            # RFC 6750 §3.1: no error code for a request that sent no credentials at all.
            challenge = 'Bearer realm="sharelock"'
            if exc.credentials:
                # Descriptions are fixed ASCII text; quotes and backslashes escaped anyway.
                text = exc.description.replace("\\", "\\\\").replace('"', '\\"')
                challenge += f', error="{exc.error}", error_description="{text}"'
            headers["WWW-Authenticate"] = challenge
        return error_response(exc.status, exc.error, exc.description, headers)

    @app.exception_handler(FlowError)
    async def _flow(_: Request, exc: FlowError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.description)

    @app.exception_handler(RightsError)
    async def _rights(_: Request, exc: RightsError) -> JSONResponse:
        if isinstance(exc, ServiceUnavailable):
            return unavailable_response(exc)
        # The messages are fixed text (`sharelock.rights.errors`): never what the person typed.
        return error_response(exc.status, exc.error, str(exc))

    @app.exception_handler(EnvelopeRejected)
    async def _envelope(_: Request, exc: EnvelopeRejected) -> JSONResponse:
        return error_response(400, "invalid_request", str(exc))

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(_: Request, exc: ServiceUnavailable) -> JSONResponse:
        return unavailable_response(exc)

    @app.exception_handler(SealError)
    async def _sealed(_: Request, exc: SealError) -> JSONResponse:
        log.error("a sealed value could not be opened")
        return error_response(500, "server_error", "stored state could not be read")

    @app.exception_handler(KeyLayerError)
    async def _keys(_: Request, exc: KeyLayerError) -> JSONResponse:
        log.error("key layer error: %s", exc)
        return error_response(500, "server_error", "the broker's keys are not in order")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the offending input back: it may be a credential.
        fields = sorted({".".join(str(p) for p in err["loc"][1:]) for err in exc.errors()})
        return error_response(400, "invalid_request", "invalid or missing: " + ", ".join(fields))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if _body_too_large(exc.__cause__):
            # A chunked body over the limit, caught by `BodyLimit` while FastAPI was reading it:
            # FastAPI reports any failure there as a 400 "error parsing the body".
            return error_response(413, "invalid_request", "request body too large")
        error = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            exc.status_code, "invalid_request"
        )
        return error_response(exc.status_code, error, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # The type only: an unexpected exception's text could hold anything.
        log.error("unexpected error: %s", type(exc).__name__)
        return error_response(500, "server_error", "internal error")
