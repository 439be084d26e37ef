"""Server-rendered pages (Jinja2), with autoescaping on."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

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


@cache
def catalogue_json(lang: str) -> Markup:
    """`lang`'s whole catalogue as the page embeds it, `messages|tojson` (HTML-safe JSON, as
    that filter makes it), made once per language: 20 kB of JSON, and the largest part of a
    consent page's render."""
    return htmlsafe_json_dumps(
        dict(i18n.catalogue(lang)),
        dumps=_ENV.policies["json.dumps_function"],
        **_ENV.policies["json.dumps_kwargs"],
    )
