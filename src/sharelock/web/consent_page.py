"""`GET /consent/{flow_id}`: the page a person sees.

The server renders everything it already knows (who asks, what, why, for how long, which data
sources) in the person's language; the page's one script (`static/consent.js`) runs the steps
that need the browser: it encrypts the credentials with Web Crypto and talks to the JSON API
(`consent_routes`), reading its messages from the catalogue embedded in the page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sharelock.checks import Description
from sharelock.checks import render as render_check
from sharelock.flow import FlowError
from sharelock.web import i18n
from sharelock.web.deps import broker_of
from sharelock.web.errors import NO_STORE, error_page
from sharelock.web.session import read_session
from sharelock.web.templates import catalogue_json, render

router = APIRouter()

# The page may load its own script, style and JSON, and nothing else.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def language_of(request: Request) -> str:
    return i18n.negotiate(request.query_params.get("lang"), request.headers.get("accept-language"))


def language_links(request: Request, lang: str) -> list[dict[str, Any]]:
    """The switch: the same page in each language (`?lang=`), no cookie."""
    return [
        {
            "lang": code,
            "name": i18n.LANGUAGE_NAMES[code],
            "href": f"{request.url.path}?lang={code}",
            "current": code == lang,
        }
        for code in i18n.SUPPORTED
    ]


def _site(url: str | None) -> dict[str, str] | None:
    """A partner URL as shown: only http(s), and its host as the link text."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return {"url": url, "host": parts.netloc}


def page_context(flow: dict[str, Any], t: i18n.Translator) -> dict[str, Any]:
    """What the template needs from `ConsentService.describe()`, in the person's words."""
    partner = flow["partner"]
    name = partner["name"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in flow["fields"]:
        groups.setdefault(item["scope"], []).append(
            {
                "field": item["field"],
                "label": t.get(f"field.{item['field']}", item["label"]),
                "optional": item["optional"],
            }
        )
    retention = flow["retention"]
    sources = [
        {
            "id": source["id"],
            "name": source["name"],
            "login_label": t.get(f"login_label.{source['login_label']}", source["login_label"]),
            "login_pattern": source.get("login_pattern") or "",
        }
        for source in flow["data_sources"]
    ]
    return {
        "partner": {
            "name": name,
            "initial": (name.strip()[:1] or "?").upper(),
            "purpose": partner.get("purpose") or "",
            "identity_verification": bool(partner.get("identity_verification")),
            "site": _site(partner.get("home_url")),
        },
        "groups": [
            {"scope": scope, "label": t.get(f"scope.{scope}", scope), "fields": fields}
            for scope, fields in groups.items()
        ],
        "retention": {
            "session": t.duration(retention["session"]),
            "delivery": t.duration(retention["authorization_code"] + retention["access_token"]),
            "audit": t.duration(retention["audit_trace"]),
            "identity": t.duration(retention["identity_data"]),
            "maintenance": t.duration(retention["maintenance_credentials"]),
        },
        "sources": sources,
        # The partner's checks, as questions in the person's language (docs/checks.md).
        "checks": [
            render_check(Description(c["question"]["key"], c["question"]["params"]), t.lang)
            for c in flow.get("checks", [])
        ],
        "status": flow["status"],
        "data_source": flow.get("data_source") or "",
        # A failure's offer still unanswered (the page was reloaded): the page asks again.
        "maintenance_offer": bool(flow.get("maintenance_offer")),
        "last_outcome": flow.get("last_outcome") or "",
    }


@router.get("/consent/{flow_id}", response_class=HTMLResponse)
async def consent(flow_id: str, request: Request) -> HTMLResponse:
    broker = broker_of(request)
    lang = language_of(request)
    t = i18n.Translator(lang)
    try:
        flow = await broker.consent.load(flow_id, read_session(request, broker.settings, flow_id))
        described = await broker.consent.describe(flow)
    except FlowError as exc:
        return error_page(request, exc.status, exc.description)
    html = render(
        request,
        "consent.html",
        {
            "flow_id": flow.flow_id,
            "lang": lang,
            "t": t,
            "languages": language_links(request, lang),
            "messages_json": catalogue_json(lang),
            # To the millisecond, so that the page's countdown ends with the session itself.
            "expires_in_ms": max(0, int((flow.expires_at - broker.clock.now()) * 1000)),
            **page_context(described, t),
            # After a share collected with a password, the offer to remember the source.
            "remember_offers": broker.consent.collection.remember_offers,
        },
    )
    return HTMLResponse(
        html,
        headers={**NO_STORE, "Content-Security-Policy": PAGE_CSP, "Content-Language": lang},
    )


@router.get("/consent/{flow_id}/continue")
async def continue_to_partner(flow_id: str, request: Request) -> Response:
    """The person goes on to the partner: the code is issued now, so that however long they
    spent on the receipt, the partner gets a code with its whole life ahead of it."""
    broker = broker_of(request)
    try:
        flow = await broker.consent.load(flow_id, read_session(request, broker.settings, flow_id))
        destination = await broker.consent.leave(flow)
    except FlowError as exc:
        return error_page(request, exc.status, exc.description)
    # The code is in the Location: no Referer carries it further.
    return RedirectResponse(
        destination, status_code=303, headers={**NO_STORE, "Referrer-Policy": "no-referrer"}
    )
