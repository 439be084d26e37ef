"""Server-rendered pages (Jinja2), with autoescaping on."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape

from sharelock.web import i18n

_ENV = Environment(
    loader=PackageLoader("sharelock.web", "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)


def render(request: Request, name: str, context: dict[str, Any]) -> str:
    """Render `name` in the person's language (`?lang=`, else `Accept-Language`)."""
    lang = i18n.negotiate(request.query_params.get("lang"), request.headers.get("accept-language"))
    base = {"request_path": request.url.path, "lang": lang, "t": i18n.Translator(lang)}
    return _ENV.get_template(name).render({**base, **context})
