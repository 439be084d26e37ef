"""Server-rendered pages (Jinja2), with autoescaping on."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape

_ENV = Environment(
    loader=PackageLoader("sharelock.web", "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)


def render(request: Request, name: str, context: dict[str, Any]) -> str:
    return _ENV.get_template(name).render({"request_path": request.url.path, **context})
