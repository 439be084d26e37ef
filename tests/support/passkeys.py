"""Passkeys for tests without a browser, and a broker whose issuer is `http://localhost:<port>`.

`SoftAuthenticator` is a WebAuthn authenticator in a few lines (an ES256 key from
`cryptography`, CBOR from `cbor2`, the library py_webauthn itself parses with): it answers the
broker's options exactly as a browser would hand an authenticator's answer over, and can be
told to lie (another origin, another relying party id, an old counter, no user verification),
so that each refusal of the broker is proven against a real signature.

Browsers refuse passkeys on an IP address (a relying party id is a domain name), so a broker a
browser uses for passkeys is served with `localhost` as its issuer's host
(`serve_localhost_broker`, `localhost_site`), still bound to the loopback address.

In Chromium, passkeys come from virtual authenticators of the DevTools `WebAuthn` domain
(`VIRTUAL_AUTHENTICATOR`): `passkey_page` opens a watched page with that domain on, and
`PasskeyPage` is the person at it, who attaches authenticators and checks each step.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, CDPSession, Page
from sqlalchemy import Engine

from sharelock.clock import SYSTEM_CLOCK, Clock
from sharelock.config import Settings
from sharelock.db import create_engine_for, migrate
from sharelock.keys import KeyLayer
from sharelock.web.app import Listeners, create_app, create_operator_app
from tests.support.browser import DESKTOP, STEP_TIMEOUT_MS, Screens, Watch, check_axe
from tests.support.redis_server import RedisServer
from tests.support.server import LiveServer, serve_sockets

UP, UV, AT = 0x01, 0x04, 0x40
# A platform authenticator (built in, discoverable passkeys) that verifies its user and answers
# without a touch: Chromium's virtual authenticator, as DevTools' `WebAuthn` domain takes it.
VIRTUAL_AUTHENTICATOR: dict[str, Any] = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    """One passkey (a P-256 key) and its signature counter."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    counter: int = 0
    user_handle: bytes | None = None

    def _cose(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode("utf-8")

    def create(
        self,
        public_key: dict[str, Any],
        origin: str,
        *,
        rp_id: str | None = None,
        verified: bool = True,
    ) -> dict[str, Any]:
        """The answer to `navigator.credentials.create({publicKey})`, as account.js sends it."""
        rp_id = rp_id or public_key["rp"]["id"]
        self.user_handle = unb64(public_key["user"]["id"])
        flags = UP | AT | (UV if verified else 0)
        attested = bytes(16) + len(self.credential_id).to_bytes(2, "big")
        attested += self.credential_id + self._cose()
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
        auth_data += self.counter.to_bytes(4, "big") + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", public_key["challenge"], origin)
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data),
                "attestationObject": b64(attestation),
                "transports": ["internal"],
            },
        }

    def get(
        self,
        public_key: dict[str, Any],
        origin: str,
        *,
        rp_id: str | None = None,
        counter: int | None = None,
        verified: bool = True,
    ) -> dict[str, Any]:
        """The answer to `navigator.credentials.get({publicKey})`; the counter moves on by one
        unless `counter` says what to claim."""
        rp_id = rp_id or public_key["rpId"]
        self.counter = self.counter + 1 if counter is None else counter
        flags = UP | (UV if verified else 0)
        auth_data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
        auth_data += self.counter.to_bytes(4, "big")
        client_data = self._client_data("webauthn.get", public_key["challenge"], origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": b64(self.user_handle) if self.user_handle else None,
            },
        }


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@contextmanager
def serve_localhost_broker(
    settings: Settings, keys: KeyLayer, *, clock: Clock = SYSTEM_CLOCK
) -> Iterator[LiveServer]:
    """`serve_broker`, with `http://localhost:<port>` as the issuer (and the URL)."""
    served: dict[str, Settings] = {}

    def build(urls: list[str]) -> Any:
        public_port, operator_port = (_port_of(url) for url in urls)
        served["settings"] = settings.model_copy(
            update={"issuer": f"http://localhost:{public_port}", "operator_port": operator_port}
        )
        app = create_app(served["settings"], keys=keys, clock=clock)
        return Listeners(app, create_operator_app(app), operator_port)

    with serve_sockets(build, 2) as (url, operator_url):
        yield LiveServer(
            url=f"http://localhost:{_port_of(url)}",
            port=_port_of(url),
            settings=served["settings"],
            operator_url=operator_url,
        )


@dataclass
class LocalhostSite:
    """A broker on `localhost` with its own Redis and SQLite file (`localhost_site`)."""

    server: LiveServer
    settings: Settings
    redis: RedisServer
    database: Path  # the directory of `sharelock.db`
    engine: Engine

    @property
    def url(self) -> str:
        return self.server.url


@contextmanager
def localhost_site(
    settings: Settings, keys: KeyLayer, sandbox_url: str, directory: Path, **overrides: Any
) -> Iterator[LocalhostSite]:
    """`serve_localhost_broker` on a Redis and a migrated SQLite database of its own, under
    `directory`; `overrides` are settings."""
    database = directory / "db"
    database.mkdir()
    with RedisServer(directory / "redis") as redis_server:
        configured = settings.model_copy(
            update={
                "redis_url": redis_server.url,
                "sandbox_url": sandbox_url,
                "database_url": f"sqlite:///{database / 'sharelock.db'}",
                **overrides,
            }
        )
        engine = create_engine_for(configured)
        migrate(engine)
        try:
            with serve_localhost_broker(configured, keys) as server:
                assert server.settings is not None
                yield LocalhostSite(server, server.settings, redis_server, database, engine)
        finally:
            engine.dispose()


def add_authenticator(cdp: CDPSession, **options: Any) -> str:
    """A `VIRTUAL_AUTHENTICATOR` (with `options` changed) attached to the page; its id."""
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator", {"options": {**VIRTUAL_AUTHENTICATOR, **options}}
    )
    return str(added["authenticatorId"])


@contextmanager
def passkey_page(
    browser: Browser, **context_options: Any
) -> Iterator[tuple[Page, CDPSession, Watch]]:
    """A new browser context (en-GB, desktop width, `STEP_TIMEOUT_MS`, `context_options`)
    recorded by a `Watch`, and its page with the DevTools `WebAuthn` domain on; closed after."""
    context = browser.new_context(locale="en-GB", viewport=DESKTOP, **context_options)
    try:
        context.set_default_timeout(STEP_TIMEOUT_MS)
        watch = Watch()
        watch.attach(context)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        yield page, cdp, watch
    finally:
        context.close()


class PasskeyPage:
    """A person at a `passkey_page`: attaches authenticators and checks each step (axe-core,
    screenshots); `axe` keeps every step's findings."""

    def __init__(self, page: Page, cdp: CDPSession, watch: Watch) -> None:
        self.page = page
        self.cdp = cdp
        self.watch = watch
        self.screens = Screens()
        self.axe: dict[str, list[str]] = {}

    def authenticator(self, **options: Any) -> str:
        return add_authenticator(self.cdp, **options)

    def check(self, step: str, screenshot: str | None = None) -> None:
        check_axe(self.page, step, self.screens, screenshot, report=self.axe)
