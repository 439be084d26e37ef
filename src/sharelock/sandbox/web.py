"""HTTP plumbing shared by the sandbox portals: templates, forms, cookies, delays.

Forms are parsed here rather than with python-multipart: the portals only ever receive small
`application/x-www-form-urlencoded` bodies, and a bounded parser of our own keeps a hostile
client (the sandbox listens on a port, after all) from making it buffer without limit.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

MAX_FORM_BYTES = 16 * 1024
MAX_FORM_FIELDS = 20
_POLL_S = 0.05

_ENV = Environment(
    loader=PackageLoader("sharelock.sandbox", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
)
_ENV.globals.update(source=None, error=None, message=None)


def page(
    template: str, *, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """Render one of the package's templates as an HTML answer."""
    html = _ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=headers)


def redirect(location: str) -> RedirectResponse:
    """303 See Other: what a portal answers to a POST that worked."""
    return RedirectResponse(location, status_code=303)


def set_cookie(response: Response, name: str, value: str, path: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="lax")


def clear_cookie(response: Response, name: str, path: str) -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="lax")


async def read_form(request: Request) -> dict[str, str] | None:
    """The first value of each field of a small URL-encoded form, or None if the body is not
    one (wrong type, too big, too many fields, not UTF-8)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items()}


async def pause(request: Request, seconds: float) -> bool:
    """Wait `seconds`, like a slow back end; stop early (returning False) if the client went
    away, so a given-up request does not hold the server, or its shutdown, for the full delay."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if await request.is_disconnected():
            return False
        await asyncio.sleep(min(_POLL_S, remaining))
    return True
