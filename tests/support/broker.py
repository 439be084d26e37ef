"""A whole broker for end-to-end tests: real Redis, SQLite (or PostgreSQL), SoftHSM, the
sandbox data sources, all over real HTTP, plus a registered partner and the two HTTP clients
of a share (the partner's back end and the person's browser)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from sharelock.config import Settings
from sharelock.db import create_engine_for, migrate
from sharelock.envelope.sealing import pick_encryption_key, seal_for
from sharelock.keys import KeyLayer
from sharelock.registry import PartnerRegistry
from sharelock.scopes import SCOPES
from tests.support.server import LiveServer, serve_broker

REDIRECT_URI = "https://partner.example/callback"


@dataclass(frozen=True)
class RegisteredPartner:
    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass
class Stack:
    broker: LiveServer
    settings: Settings
    partner: RegisteredPartner
    other_partner: RegisteredPartner
    registry: PartnerRegistry

    @property
    def url(self) -> str:
        return self.broker.url

    def partner_client(self, partner: RegisteredPartner | None = None) -> httpx.Client:
        partner = partner or self.partner
        return httpx.Client(
            base_url=self.url, auth=(partner.client_id, partner.client_secret), timeout=30
        )

    def browser(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, follow_redirects=False)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Share:
    """One share driven step by step, so tests can stop or misbehave at any step."""

    stack: Stack
    scope: str = "identity address bank_account"
    partner: RegisteredPartner | None = None
    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    verifier: str = ""
    challenge: str = ""
    flow_id: str = ""
    browser: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.partner = self.partner or self.stack.partner
        self.verifier, self.challenge = pkce_pair()
        self.browser = self.stack.browser()

    def authorize_params(self, **overrides: str) -> dict[str, str]:
        assert self.partner is not None
        params = {
            "response_type": "code",
            "client_id": self.partner.client_id,
            "redirect_uri": self.partner.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def start(self, **overrides: str) -> httpx.Response:
        response = self.browser.get("/authorize", params=self.authorize_params(**overrides))
        if response.status_code == 303 and response.headers["location"].startswith("/consent/"):
            self.flow_id = response.headers["location"].rsplit("/", 1)[-1]
        return response

    def jwk(self) -> dict[str, Any]:
        return dict(pick_encryption_key(self.browser.get("/.well-known/jwks.json").json()))

    def seal(self, payload: dict[str, str]) -> str:
        return seal_for(self.jwk(), payload)

    def send_credentials(
        self, login: str, password: str, data_source: str = "sandbox-bank"
    ) -> httpx.Response:
        return self.browser.post(
            f"/api/flows/{self.flow_id}/credentials",
            json={
                "data_source": data_source,
                "credentials": self.seal({"login": login, "password": password}),
            },
        )

    def send_otp(self, otp: str) -> httpx.Response:
        return self.browser.post(
            f"/api/flows/{self.flow_id}/otp", json={"otp": self.seal({"otp": otp})}
        )

    def decide(self, approve: bool, omit: list[str] | None = None) -> httpx.Response:
        return self.browser.post(
            f"/api/flows/{self.flow_id}/decision", json={"approve": approve, "omit": omit or []}
        )

    def approve_and_get_code(self, omit: list[str] | None = None) -> str:
        decision = self.decide(True, omit)
        assert decision.status_code == 200, decision.text
        query = parse_qs(urlsplit(decision.json()["redirect_to"]).query)
        assert query["state"] == [self.state]
        assert query["iss"] == [self.stack.url]
        return query["code"][0]

    def exchange(self, code: str, **overrides: str) -> httpx.Response:
        assert self.partner is not None
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.partner.redirect_uri,
            "code_verifier": self.verifier,
        }
        data.update(overrides)
        with self.stack.partner_client(self.partner) as client:
            return client.post("/token", data={k: v for k, v in data.items() if v is not None})

    def fetch(self, token: str) -> httpx.Response:
        with httpx.Client(base_url=self.stack.url, timeout=30) as client:
            return client.get("/v1/share", headers={"Authorization": f"Bearer {token}"})

    def collect(
        self,
        login: str = "alice",
        password: str = "alice-pass",  # noqa: S107
        data_source: str = "sandbox-bank",
    ) -> None:
        assert self.start().status_code == 303
        response = self.send_credentials(login, password, data_source)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "collected", response.json()

    def complete(self, **collect: str) -> dict[str, Any]:
        self.collect(**collect)
        token = self.exchange(self.approve_and_get_code())
        assert token.status_code == 200, token.text
        shared = self.fetch(token.json()["access_token"])
        assert shared.status_code == 200, shared.text
        result: dict[str, Any] = shared.json()
        return result


def register(registry: PartnerRegistry, name: str, redirect_uri: str) -> RegisteredPartner:
    partner, secret = registry.add(
        name=name, redirect_uris=[redirect_uri], scopes=list(SCOPES), purpose=f"{name} tests"
    )
    return RegisteredPartner(partner.client_id, secret, redirect_uri)


@contextmanager
def broker_stack(
    settings: Settings,
    keys: KeyLayer,
    *,
    redis_url: str,
    sandbox_url: str,
    database_url: str,
    **overrides: Any,
) -> Iterator[Stack]:
    settings = settings.model_copy(
        update={
            "redis_url": redis_url,
            "sandbox_url": sandbox_url,
            "database_url": database_url,
            "connector_timeout": 2.0,
            **overrides,
        }
    )
    engine = create_engine_for(settings)
    migrate(engine)
    registry = PartnerRegistry(engine)
    partner = register(registry, "Partner A", REDIRECT_URI)
    other = register(registry, "Partner B", "https://other.example/cb")
    try:
        with serve_broker(settings, keys) as server:
            assert server.settings is not None
            yield Stack(server, server.settings, partner, other, registry)
    finally:
        engine.dispose()


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'sharelock.db'}"
