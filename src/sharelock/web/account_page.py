"""`GET /account` and `GET /account/new`: the optional account's pages (docs/accounts.md).

Server-rendered like the consent and rights pages, in the person's language, under the same
Content-Security-Policy; the page's one script (`static/account.js`) runs the passkey
ceremonies (`navigator.credentials.create/get`) against the JSON API (`account_routes`).
`/account` shows the signed-in account (passkeys, connected sources with their last sync, the
history of shares, export, deletion), or the ways in (a passkey, the recovery code).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.dates import format_date, format_datetime
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from sharelock.accounts import AccountService
from sharelock.web import i18n
from sharelock.web.account_routes import read_account_session
from sharelock.web.consent_page import PAGE_CSP, language_links, language_of
from sharelock.web.deps import broker_of
from sharelock.web.errors import NO_STORE
from sharelock.web.templates import render

router = APIRouter()

# What a page says after an action (`?done=`): a fixed set of notices.
DONE = (
    "created",
    "signed_in",
    "signed_out",
    "passkey_added",
    "passkey_removed",
    "source_revoked",
    "deleted",
)
_SCRIPT_PREFIXES = (
    "account.",
    "error.network",
    "error.generic",
    "error.temporarily_unavailable",
)


def _day(iso: str | None, lang: str) -> str | None:
    if iso is None:
        return None
    return str(format_date(datetime.fromisoformat(iso), format="long", locale=lang))


def _moment(iso: str | None, lang: str) -> str | None:
    if iso is None:
        return None
    return str(format_datetime(datetime.fromisoformat(iso), format="medium", locale=lang))


def _dated(view: dict[str, Any], lang: str) -> dict[str, Any]:
    """The overview with its dates in the person's words."""
    account = view["account"]
    return {
        "summary": {
            "created": _day(account["created_at"], lang),
            "used": _day(account["last_used_at"], lang),
            "until": _day(account["deleted_if_unused_until"], lang),
        },
        "recovery_session": view["recovery_session"],
        "passkeys": [
            {
                **p,
                "created": _day(p["created_at"], lang),
                "used": _moment(p["last_used_at"], lang),
            }
            for p in view["passkeys"]
        ],
        "sources": [
            {
                **s,
                "connected": _day(s["connected_at"], lang),
                "synced": _moment(s["last_sync_at"], lang),
            }
            for s in view["sources"]
        ],
        "shares": [{**s, "when": _moment(s["at"], lang)} for s in view["shares"]],
    }


def _page(request: Request, template: str, context: dict[str, Any]) -> HTMLResponse:
    lang = language_of(request)
    t = i18n.Translator(lang)
    accounts: AccountService = broker_of(request).accounts
    retention = broker_of(request).settings.retention.account
    done = request.query_params.get("done")
    html = render(
        request,
        template,
        {
            "lang": lang,
            "t": t,
            "languages": language_links(request, lang),
            "messages": {k: v for k, v in t.messages.items() if k.startswith(_SCRIPT_PREFIXES)},
            "available": accounts.available,
            "retention": t.duration(int(retention.total_seconds())),
            "done": done if done in DONE else None,
            **context,
        },
    )
    return HTMLResponse(
        html, headers={**NO_STORE, "Content-Security-Policy": PAGE_CSP, "Content-Language": lang}
    )


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request) -> HTMLResponse:
    broker = broker_of(request)
    signed = await broker.accounts.signed_in(read_account_session(request, broker.settings))
    if signed is None:
        return _page(request, "account.html", {"signed_in": False})
    view = await broker.accounts.holdings.overview(signed)
    return _page(request, "account.html", {"signed_in": True, **_dated(view, language_of(request))})


@router.get("/account/new", response_class=HTMLResponse)
async def new_account_page(request: Request) -> HTMLResponse:
    return _page(request, "account_new.html", {})
