"""A whole broker for end-to-end tests: real Redis, SQLite (or PostgreSQL), SoftHSM, the
sandbox data sources, all over real HTTP, plus a registered partner and the two HTTP clients
of a share (the partner's back end and the person's browser)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import redis
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from sharelock.audit import AuditRecord
from sharelock.audit.records import select_records
from sharelock.clock import SYSTEM_CLOCK, Clock
from sharelock.config import Settings
from sharelock.db import create_engine_for, migrate
from sharelock.db.models import AuditEventRow
from sharelock.envelope.sealing import pick_encryption_key, seal_for
from sharelock.flow import flow_ref
from sharelock.flow.records import CODE, TOKEN, Kind
from sharelock.keys import KeyLayer
from sharelock.oauth.tokens import digest
from sharelock.registry import PartnerRegistry
from sharelock.sandbox import create_sandbox_app
from sharelock.scopes import SCOPES
from tests.support.sandbox import TEST_SLOW_SECONDS
from tests.support.server import LiveServer, serve_app, serve_broker

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
    engine: Engine | None = None

    @property
    def url(self) -> str:
        return self.broker.url

    def raw_redis(self) -> redis.Redis:
        """A plain client on the broker's Redis, for looking at what it really holds."""
        assert self.settings.redis_url is not None
        return redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )

    def audit_rows(
        self,
        event: str | None = None,
        *,
        client_id: str | None = None,
        flow_id: str | None = None,
        delivery_key: str | None = None,
    ) -> list[AuditRecord]:
        """The audit rows matching every given filter, oldest first, straight from SQL."""
        assert self.engine is not None
        query = select_records()
        if event is not None:
            query = query.where(AuditEventRow.event == event)
        if client_id is not None:
            query = query.where(AuditEventRow.client_id == client_id)
        if flow_id is not None:
            query = query.where(AuditEventRow.flow_ref == flow_ref(flow_id))
        if delivery_key is not None:
            query = query.where(AuditEventRow.delivery_key == delivery_key)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(AuditEventRow.id)).mappings().all()
        return [AuditRecord.from_mapping(row) for row in rows]

    def add_partner(
        self,
        name: str,
        redirect_uri: str = REDIRECT_URI,
        scopes: Iterable[str] = SCOPES,
        **extra: Any,
    ) -> RegisteredPartner:
        """Register one more partner (e.g. with fewer scopes, or a JWKS for private_key_jwt)."""
        partner, secret = self.registry.add(
            name=name, redirect_uris=[redirect_uri], scopes=list(scopes), **extra
        )
        return RegisteredPartner(partner.client_id, secret, redirect_uri)

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
    request_uri: str = ""
    browser: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.partner = self.partner or self.stack.partner
        self.verifier, self.challenge = pkce_pair()
        self.browser = self.stack.browser()

    @property
    def client_id(self) -> str:
        assert self.partner is not None
        return self.partner.client_id

    @property
    def redirect_uri(self) -> str:
        assert self.partner is not None
        return self.partner.redirect_uri

    def authorize_params(self, **overrides: str | None) -> dict[str, str]:
        """The request's parameters; an override of None leaves the parameter out."""
        assert self.partner is not None
        params: dict[str, str | None] = {
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

    def push(self, **overrides: str | None) -> httpx.Response:
        """`POST /par` as the partner's back end (client_secret_basic). The client id travels
        in the credentials; an overridden `client_id` is sent in the body as well."""
        data = self.authorize_params(**overrides)
        if "client_id" not in overrides:
            del data["client_id"]
        with self.stack.partner_client(self.partner) as client:
            return client.post("/par", data=data)

    def authorize_pushed(self, request_uri: str, client_id: str | None = None) -> httpx.Response:
        """The browser sent to `GET /authorize?client_id=…&request_uri=…`."""
        response = self.browser.get(
            "/authorize",
            params={"client_id": client_id or self.client_id, "request_uri": request_uri},
        )
        self._follow(response)
        return response

    def start(self, **overrides: str | None) -> httpx.Response:
        """Push the request, then open `/authorize` with its request_uri: the /authorize
        response. If the push is refused, the refusal (the JSON answer of /par) instead."""
        pushed = self.push(**overrides)
        if pushed.status_code != 201:
            return pushed
        self.request_uri = pushed.json()["request_uri"]
        return self.authorize_pushed(self.request_uri)

    def start_plain(self, **overrides: str | None) -> httpx.Response:
        """A plain authorization request (no PAR): only a partner registered with
        `par_exempt=True` may send one."""
        response = self.browser.get("/authorize", params=self.authorize_params(**overrides))
        self._follow(response)
        return response

    def _follow(self, response: httpx.Response) -> None:
        if response.status_code == 303 and response.headers["location"].startswith("/consent/"):
            self.flow_id = response.headers["location"].rsplit("/", 1)[-1]

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

    def describe(self) -> httpx.Response:
        return self.browser.get(f"/api/flows/{self.flow_id}")

    def review(self) -> httpx.Response:
        return self.browser.get(f"/api/flows/{self.flow_id}/data")

    def decide(self, approve: bool, omit: list[str] | None = None) -> httpx.Response:
        return self.browser.post(
            f"/api/flows/{self.flow_id}/decision", json={"approve": approve, "omit": omit or []}
        )

    def approve_and_get_code(self, omit: list[str] | None = None) -> str:
        decision = self.decide(True, omit)
        assert decision.status_code == 200, decision.text
        return self.continue_to_partner(decision.json()["redirect_to"])

    def continue_to_partner(self, continue_url: str) -> str:
        """Follow the approved flow's Continue link, as the person does: the broker issues
        the code then and redirects to the partner; returns the code."""
        assert continue_url == f"{self.stack.url}/consent/{self.flow_id}/continue"
        response = self.browser.get(continue_url)
        assert response.status_code == 303, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert query["state"] == [self.state]
        assert query["iss"] == [self.stack.url]
        code: str = query["code"][0]
        return code

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
        password: str = "alice-pass",
        data_source: str = "sandbox-bank",
    ) -> None:
        assert self.start().status_code == 303
        self.collect_started(login, password, data_source)

    def collect_started(
        self,
        login: str = "alice",
        password: str = "alice-pass",
        data_source: str = "sandbox-bank",
    ) -> None:
        """Collect in the flow already started."""
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
    """A partner with every scope, whose declared purpose includes identity verification (so
    the identity data it receives is kept 72 h, as the tests of that retention expect)."""
    partner, secret = registry.add(
        name=name,
        redirect_uris=[redirect_uri],
        scopes=list(SCOPES),
        purpose=f"{name} tests",
        identity_verification=True,
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
    clock: Clock = SYSTEM_CLOCK,
    **overrides: Any,
) -> Iterator[Stack]:
    """A broker over real HTTP with two registered partners; `overrides` are settings, and
    `clock` the broker's time (a test's clock moves instead of sleeping)."""
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
        with serve_broker(settings, keys, clock=clock) as server:
            assert server.settings is not None
            yield Stack(server, server.settings, partner, other, registry, engine)
    finally:
        engine.dispose()


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'sharelock.db'}"


@dataclass(frozen=True)
class StackFactory:
    """`broker_stack` with the test session's settings and HSM token already bound: what the
    `make_stack` fixture returns, so that a module's own broker states only what differs from
    the shared `stack` (its Redis, its sandbox, its database, settings overrides such as
    `retention=` or `connector_timeout=`).

    The Redis and the sandbox are always named by the caller: they come from fixtures of the
    caller's scope (a module's own Redis, a counting sandbox, a module overriding
    `redis_server`), which a session-wide factory cannot see. The database is a fresh SQLite
    file unless `database_url` is given."""

    settings: Settings
    keys: KeyLayer
    new_directory: Callable[[], Path]

    def __call__(
        self,
        *,
        redis_url: str,
        sandbox_url: str,
        database_url: str | None = None,
        **overrides: Any,
    ) -> AbstractContextManager[Stack]:
        return broker_stack(
            self.settings,
            self.keys,
            redis_url=redis_url,
            sandbox_url=sandbox_url,
            database_url=database_url or sqlite_url(self.new_directory()),
            **overrides,
        )


# -- looking at what Redis really holds --------------------------------------------------------


def redis_keys(client: redis.Redis, pattern: str = "sl:*") -> dict[str, int]:
    """Every key matching `pattern` with its PTTL in ms (-1: none); keys gone mid-scan skipped."""
    keys: dict[str, int] = {}
    for raw in client.scan_iter(match=pattern, count=1000):
        ttl = int(client.pttl(raw))
        if ttl != -2:
            keys[raw.decode("utf-8", "replace")] = ttl
    return keys


def flow_keys(client: redis.Redis, flow_id: str) -> dict[str, int]:
    """The keys that belong to one flow: named by its id or by its audit reference."""
    ref = flow_ref(flow_id)
    return {k: t for k, t in redis_keys(client).items() if flow_id in k or ref in k}


def record_key(kind: Kind[Any], record_id: str) -> str:
    """The Redis key of a record of the broker's store (namespace `sl`), slot tag included."""
    return f"sl:{kind.name}:{kind.store_id(record_id)}"


def code_key(code: str) -> str:
    return record_key(CODE, digest(code))


def token_key(token: str) -> str:
    return record_key(TOKEN, digest(token))


# -- a sandbox that counts data-source logins -----------------------------------------------


class LoginCounter:
    """ASGI wrapper counting the credential posts each sandbox portal receives: the proof that
    the broker did (or did not) log in to a data source."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.posts: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.endswith(("/login", "/otp")):
                self.posts[path] += 1
        await self.app(scope, receive, send)

    def total(self) -> int:
        return sum(self.posts.values())


@dataclass(frozen=True)
class CountingSandbox:
    url: str
    logins: LoginCounter


@contextmanager
def counting_sandbox(slow_seconds: float = TEST_SLOW_SECONDS) -> Iterator[CountingSandbox]:
    """A fresh sandbox over real HTTP whose login and one-time-code posts are counted."""
    counter = LoginCounter(create_sandbox_app(slow_seconds=slow_seconds))
    with serve_app(lambda _url: counter) as server:
        yield CountingSandbox(server.url, counter)
