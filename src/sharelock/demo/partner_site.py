"""A small partner ("Demo Shop") as a real partner would integrate Sharelock: a button that
pushes the authorization request (PAR, RFC 9126) with PKCE, a callback that checks `state` and
`iss` (RFC 9207), exchanges the code with `client_secret_basic`, and fetches the data once."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape

_ENV = Environment(
    loader=PackageLoader("sharelock.demo", "templates"), autoescape=select_autoescape(["html"])
)
ALL_SCOPES = "identity address bank_account"


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
    received: dict[str, dict[str, Any]] = field(default_factory=dict)


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def create_partner_app(config: PartnerConfig) -> FastAPI:
    app = FastAPI(title=config.name, docs_url=None, redoc_url=None)
    state = PartnerState()
    auth = (config.client_id, config.client_secret)

    def page(name: str, **context: Any) -> HTMLResponse:
        html = _ENV.get_template(name).render(partner=config.name, **context)
        return HTMLResponse(
            html, headers={"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'"}
        )

    @app.get("/")
    async def home() -> HTMLResponse:
        return page("home.html", scopes=ALL_SCOPES.split())

    @app.post("/start")
    async def start(request: Request) -> RedirectResponse:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        scope = form.get("scope", [ALL_SCOPES])[0]
        verifier, challenge = _pkce_pair()
        flow_state = secrets.token_urlsafe(16)
        async with httpx.AsyncClient(base_url=config.broker_url, timeout=10) as client:
            pushed = await client.post(
                "/par",
                auth=auth,
                data={
                    "response_type": "code",
                    "redirect_uri": config.redirect_uri,
                    "scope": scope,
                    "state": flow_state,
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                },
            )
        pushed.raise_for_status()
        state.pending[flow_state] = _Pending(verifier, scope)
        query = urlencode(
            {"client_id": config.client_id, "request_uri": pushed.json()["request_uri"]}
        )
        return RedirectResponse(f"{config.broker_url}/authorize?{query}", status_code=303)

    @app.get("/callback")
    async def callback(request: Request) -> HTMLResponse:
        params = request.query_params
        pending = state.pending.pop(params.get("state", ""), None)
        if pending is None:
            return page("result.html", error="unknown or reused state", data=None)
        if params.get("iss") != config.broker_url:
            return page("result.html", error="unexpected issuer", data=None)
        if "error" in params:
            return page("result.html", error=params["error"], data=None)
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
                return page("result.html", error=token.json().get("error"), data=None)
            shared = await client.get(
                "/v1/share", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
            )
        if shared.status_code != 200:
            return page("result.html", error=shared.json().get("error"), data=None)
        return page("result.html", error=None, data=shared.json())

    return app
