"""A small partner ("Demo Shop") as a real partner would integrate Sharelock: a button that
pushes the authorization request (PAR, RFC 9126) with PKCE, a callback that checks `state`
(bound to this browser by a cookie) and `iss` (RFC 9207), exchanges the code with
`client_secret_basic`, and fetches the data once, then shows what it received.

Its pages are plain server-rendered HTML with a stylesheet of their own: no script at all."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from sharelock.connectors import DATA_SOURCES
from sharelock.scopes import FIELD_LABELS

SOURCE_NAMES = {info.id: info.name for info in DATA_SOURCES}

log = logging.getLogger("sharelock.demo")

_ENV = Environment(
    loader=PackageLoader("sharelock.demo", "templates"), autoescape=select_autoescape(["html"])
)
ALL_SCOPES = "identity address bank_account"
TAX_SCOPES = "identity tax_notice"
STATE_COOKIE = "demo_shop_state"
MAX_PENDING = 1000

SCOPE_TITLES = {
    "identity": "Identity",
    "address": "Address",
    "phone": "Phone",
    "email": "Email",
    "bank_account": "Bank account",
    "tax_notice": "Tax notice",
}
ERROR_TEXTS = {
    "access_denied": "You chose not to share your data. Nothing was received.",
    "unknown_state": "This answer does not belong to a request started in this browser.",
    "unexpected_issuer": "The answer did not come from the expected Sharelock broker.",
    "par_failed": "Sharelock refused to start the request. Try again later.",
    "broker_unreachable": "Sharelock could not be reached. Try again later.",
}
OFFERS = (
    {
        "id": "share",
        "scope": ALL_SCOPES,
        "title": "Open your account",
        "text": "To open your account we need your identity, your address and your bank details.",
        "button": "Share my data with Sharelock",
        "source": "from your bank",
    },
    {
        "id": "share-tax",
        "scope": TAX_SCOPES,
        "title": "Check your loan eligibility",
        "text": "To study a loan we need your identity and your latest tax notice.",
        "button": "Share my tax notice with Sharelock",
        "source": "from the tax office",
    },
    {
        "id": "verify",
        "scope": "",
        "title": "Pay by direct debit",
        "text": (
            "Type the name and IBAN to debit: your bank answers whether the account is "
            "yours and whether you are over 18, without sending us anything else."
        ),
        "button": "Verify with Sharelock",
        "source": "from your bank: answers only, no data",
        "checks": True,
    },
)
# What the demo asks with the "verify" offer (docs/checks.md), and how it shows each answer.
CHECK_TITLES = {
    "name_match": "Account holder's name",
    "iban_holder_match": "The IBAN is yours",
    "age_over": "Over 18",
}
RESULT_TEXTS = {
    True: "yes",
    False: "no",
    "match": "matches",
    "close_match": "close, not the same",
    "no_match": "does not match",
    "check_not_possible": "could not be checked",
}


def _check_details(form: dict[str, list[str]]) -> str:
    """The `authorization_details` of the "verify" offer, from what the person typed."""

    def typed(name: str) -> str:
        return form.get(name, [""])[0].strip()[:200]

    return json.dumps(
        [
            {
                "type": "sharelock_check",
                "check": "name_match",
                "id": "holder",
                "given_name": typed("given_name"),
                "family_name": typed("family_name"),
            },
            {"type": "sharelock_check", "check": "iban_holder_match", "id": "iban",
             "iban": typed("iban")},
            {"type": "sharelock_check", "check": "age_over", "id": "adult", "age": 18},
        ]
    )  # fmt: skip


def _answer_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    rows = []
    for check in data.get("checks", []):
        result = "declined" if check.get("declined") else RESULT_TEXTS.get(check.get("result"), "?")
        name = check.get("actual_name")
        if isinstance(name, dict):
            result += f" (at the bank: {name.get('given_name')} {name.get('family_name')})"
        rows.append(
            {
                "id": str(check.get("id", check.get("check"))),
                "label": CHECK_TITLES.get(str(check.get("check")), str(check.get("check"))),
                "value": result,
            }
        )
    return rows


@dataclass(frozen=True)
class PartnerConfig:
    broker_url: str
    client_id: str
    client_secret: str
    redirect_uri: str
    name: str = "Demo Shop"


@dataclass
class _Pending:
    verifier: str
    scope: str


@dataclass
class PartnerState:
    pending: dict[str, _Pending] = field(default_factory=dict)


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _received_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The delivered data as titled groups of labelled values, in the order received."""
    groups = []
    for scope, values in data.get("data", {}).items():
        groups.append(
            {
                "scope": scope,
                "title": SCOPE_TITLES.get(scope, scope),
                "fields": [
                    {"name": name, "label": FIELD_LABELS.get(name, name), "value": value}
                    for name, value in values.items()
                ],
            }
        )
    return groups


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"http_{response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else f"http_{response.status_code}"


def create_partner_app(config: PartnerConfig) -> FastAPI:
    app = FastAPI(title=config.name, docs_url=None, redoc_url=None)
    state = PartnerState()
    auth = (config.client_id, config.client_secret)
    csp = (
        "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action 'self' {config.broker_url}; base-uri 'none'; frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }

    def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = _ENV.get_template(name).render(partner=config.name, **context)
        return HTMLResponse(html, status_code=status_code, headers=headers)

    def failure(code: str, status_code: int = 200) -> HTMLResponse:
        text = ERROR_TEXTS.get(code, "The share did not complete. Nothing was received.")
        return page("result.html", status_code, error=code, error_text=text, groups=None)

    @app.get("/")
    async def home() -> HTMLResponse:
        return page("home.html", offers=OFFERS)

    @app.post("/start")
    async def start(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        scope = form.get("scope", [ALL_SCOPES])[0]
        checks = form.get("offer", [""])[0] == "verify"
        if checks:
            scope = ""
        elif scope not in (ALL_SCOPES, TAX_SCOPES):
            scope = ALL_SCOPES
        request_params = {
            "response_type": "code",
            "redirect_uri": config.redirect_uri,
            "state": "",
            "code_challenge": "",
            "code_challenge_method": "S256",
        }
        if scope:
            request_params["scope"] = scope
        if checks:
            request_params["authorization_details"] = _check_details(form)
        verifier, challenge = _pkce_pair()
        flow_state = secrets.token_urlsafe(16)
        try:
            async with httpx.AsyncClient(base_url=config.broker_url, timeout=10) as client:
                pushed = await client.post(
                    "/par",
                    auth=auth,
                    data={**request_params, "state": flow_state, "code_challenge": challenge},
                )
        except httpx.HTTPError:
            return failure("broker_unreachable", 502)
        if pushed.status_code != 201:
            log.warning("PAR refused: %s", _error_code(pushed))
            return failure("par_failed", 502)
        if len(state.pending) >= MAX_PENDING:
            state.pending.pop(next(iter(state.pending)))
        state.pending[flow_state] = _Pending(verifier, scope)
        query = urlencode(
            {"client_id": config.client_id, "request_uri": pushed.json()["request_uri"]}
        )
        response = RedirectResponse(f"{config.broker_url}/authorize?{query}", status_code=303)
        response.set_cookie(
            STATE_COOKIE, flow_state, max_age=3600, path="/", httponly=True, samesite="lax"
        )
        return response

    @app.get("/callback")
    async def callback(request: Request) -> HTMLResponse:
        params = request.query_params
        returned = params.get("state", "")
        bound = request.cookies.get(STATE_COOKIE, "")
        pending = None
        if returned and hmac.compare_digest(returned.encode(), bound.encode()):
            pending = state.pending.pop(returned, None)
        if pending is None:
            return failure("unknown_state", 400)
        if params.get("iss") != config.broker_url:
            return failure("unexpected_issuer", 400)
        if "error" in params:
            return failure(params["error"])
        async with httpx.AsyncClient(base_url=config.broker_url, timeout=10) as client:
            token = await client.post(
                "/token",
                auth=auth,
                data={
                    "grant_type": "authorization_code",
                    "code": params.get("code", ""),
                    "redirect_uri": config.redirect_uri,
                    "code_verifier": pending.verifier,
                },
            )
            if token.status_code != 200:
                return failure(_error_code(token))
            shared = await client.get(
                "/v1/share", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
            )
        if shared.status_code != 200:
            return failure(_error_code(shared))
        data = shared.json()
        identity = data.get("data", {}).get("identity", {})
        response = page(
            "result.html",
            error=None,
            data=data,
            # The source by its name, as the person knew it, not its id.
            source_name=SOURCE_NAMES.get(str(data.get("data_source")), data.get("data_source")),
            groups=_received_rows(data),
            answers=_answer_rows(data),
            given_name=identity.get("given_name"),
        )
        response.delete_cookie(STATE_COOKIE, path="/")
        return response

    static = resources.files("sharelock.demo").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app
