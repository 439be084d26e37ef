"""Interoperability of the credential envelope with the JWE producers the broker will meet.

- Headless Chromium (Debian's `chromium`, driven by Playwright) runs
  the consent screen's own script (`src/sharelock/web/static/consent.js`, whose first part
  encrypts) in a page served by
  the running broker: it fetches `/.well-known/jwks.json` over real HTTP, encrypts with Web
  Crypto, and the broker opens the result through the real SoftHSM token.
- Two independent JOSE libraries (jwcrypto, joserfc) encrypt with the JWK as published over
  HTTP, and the broker opens their output too.

The broker's own JSON endpoints send `Content-Security-Policy: default-src 'none'`, under which a
page may not even `fetch` (checked below). So the browser tests load a small page, served on the
broker's origin in front of the broker's app, with the consent page's own policy
(`sharelock.web.consent_page.PAGE_CSP`): the script must work under it (no inline code, no eval).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwe as joserfc_jwe
from joserfc.jwk import RSAKey as JoserfcRsaKey
from jwcrypto import jwe as jwcrypto_jwe
from jwcrypto import jwk as jwcrypto_jwk
from playwright.sync_api import Browser, Page, sync_playwright
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sharelock.config import Settings
from sharelock.envelope import EnvelopeRejected, open_envelope
from sharelock.keys import KeyLayer
from sharelock.web.consent_page import PAGE_CSP
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.redis_server import RedisServer
from tests.support.server import LiveServer, serve_broker

# The consent screen's own script, as shipped: its first part is the encryption code.
SCRIPT = Path(__file__).resolve().parents[2] / "src" / "sharelock" / "web" / "static" / "consent.js"
PAGE_PATH = "/__test__/webcrypto.html"
SCRIPT_PATH = "/__test__/consent.js"
PAGE_HTML = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>webcrypto</title>'
    f'<script src="{SCRIPT_PATH}"></script></head><body></body></html>'
)
CREDENTIAL_FIELDS = {"login": 256, "password": 256}

# In the page: fetch the JWKS from the broker and encrypt the payload with it.
ENCRYPT_WITH_BROKER_JWKS = """
async (payload) => {
  const response = await fetch("/.well-known/jwks.json", { cache: "no-store" });
  if (!response.ok) throw new Error("JWKS answered " + response.status);
  return encryptCredentials(await response.json(), payload);
}
"""
ENCRYPT_WITH_GIVEN_JWKS = "([jwks, payload]) => encryptCredentials(jwks, payload)"


def with_test_page(app: ASGIApp) -> ASGIApp:
    """The broker's app, with the test page and the script served in front of it."""
    routes = {
        PAGE_PATH: ("text/html; charset=utf-8", PAGE_HTML.encode()),
        SCRIPT_PATH: ("text/javascript; charset=utf-8", SCRIPT.read_bytes()),
    }

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        route = routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await app(scope, receive, send)
            return
        media_type, body = route
        headers = {
            "Content-Security-Policy": PAGE_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        }
        await Response(body, media_type=media_type, headers=headers)(scope, receive, send)

    return dispatch


def b64u_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.fixture(scope="module")
def broker(
    settings: Settings,
    key_layer: KeyLayer,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("db") / "sharelock.db"
    served = settings.model_copy(
        update={"redis_url": redis_server.url, "database_url": f"sqlite:///{database}"}
    )
    with serve_broker(served, key_layer, wrap=with_test_page) as server:
        yield server


@pytest.fixture(scope="module")
def published_jwks(broker: LiveServer) -> dict[str, Any]:
    response = httpx.get(f"{broker.url}/.well-known/jwks.json", timeout=30.0)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def published_jwk(published_jwks: dict[str, Any]) -> dict[str, Any]:
    jwk: dict[str, Any] = published_jwks["keys"][0]
    return jwk


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # No skip: a machine without Chromium cannot vouch for the consent screen's encryption.
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: install Debian's 'chromium' package"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, broker: LiveServer) -> Iterator[Page]:
    context = browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(broker.url + PAGE_PATH)
        assert response is not None and response.ok
        assert page.evaluate("() => window.isSecureContext"), "loopback HTTP must be secure"
        assert page.evaluate("() => typeof encryptCredentials") == "function"
        yield page
    finally:
        context.close()


def open_credentials(compact: str, keys: KeyLayer) -> dict[str, str]:
    with open_envelope(compact, keys) as opened:
        return opened.json_object(CREDENTIAL_FIELDS)


# -- the browser --------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize(
    "credentials",
    [
        {"login": "alice", "password": "alice-pass"},
        {"login": "jeanne.dupont@example.fr", "password": 'pâté-€-🔑 "quoted" \\ slash'},
    ],
    ids=["ascii", "unicode"],
)
def test_browser_jwe_opens_in_the_broker(
    page: Page, key_layer: KeyLayer, published_jwk: dict[str, Any], credentials: dict[str, str]
) -> None:
    compact = page.evaluate(ENCRYPT_WITH_BROKER_JWKS, credentials)
    assert isinstance(compact, str)
    assert open_credentials(compact, key_layer) == credentials

    protected, encrypted_key, iv, ciphertext, tag = compact.split(".")
    assert json.loads(b64u_decode(protected)) == {
        "alg": published_jwk["alg"],
        "enc": "A256GCM",
        "kid": published_jwk["kid"],
    }
    assert len(b64u_decode(encrypted_key)) == 512  # RSA-4096
    assert len(b64u_decode(iv)) == 12
    assert len(b64u_decode(tag)) == 16
    # JSON.stringify's compact form, UTF-8: GCM adds no padding.
    clear = json.dumps(credentials, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(b64u_decode(ciphertext)) == len(clear)
    assert "=" not in compact and "+" not in compact and "/" not in compact


@pytest.mark.browser
def test_browser_uses_a_fresh_key_and_iv_each_time(page: Page, key_layer: KeyLayer) -> None:
    credentials = {"login": "alice", "password": "alice-pass"}
    first = page.evaluate(ENCRYPT_WITH_BROKER_JWKS, credentials).split(".")
    second = page.evaluate(ENCRYPT_WITH_BROKER_JWKS, credentials).split(".")
    assert first[0] == second[0]  # same header
    assert first[1] != second[1] and first[2] != second[2] and first[3] != second[3]


@pytest.mark.browser
def test_tampered_browser_jwe_is_rejected(page: Page, key_layer: KeyLayer) -> None:
    compact = page.evaluate(ENCRYPT_WITH_BROKER_JWKS, {"login": "alice", "password": "x"})
    parts = compact.split(".")
    tag = bytearray(b64u_decode(parts[4]))
    tag[0] ^= 1
    parts[4] = base64.urlsafe_b64encode(bytes(tag)).rstrip(b"=").decode()
    with pytest.raises(EnvelopeRejected):
        open_credentials(".".join(parts), key_layer)


@pytest.mark.browser
@pytest.mark.parametrize("alg", ["RSA-OAEP", "RSA-OAEP-256"])
def test_browser_jwe_follows_the_published_alg(page: Page, alg: str) -> None:
    """Both OAEP variants the script knows, checked against a software key with jwcrypto (the
    HSM under test may support only one of them)."""
    private = jwcrypto_jwk.JWK.generate(kty="RSA", size=2048)
    public = {**private.export_public(as_dict=True), "use": "enc", "alg": alg}
    public["kid"] = private.thumbprint()
    payload = {"login": "bob", "password": "bob-pass"}
    compact = page.evaluate(ENCRYPT_WITH_GIVEN_JWKS, [{"keys": [public]}, payload])
    assert json.loads(b64u_decode(compact.split(".")[0]))["alg"] == alg
    token = jwcrypto_jwe.JWE()
    token.deserialize(compact, key=private)
    assert json.loads(token.payload) == payload


@pytest.mark.browser
@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": []},
        {},
        {
            "keys": [
                {"kty": "RSA", "use": "sig", "alg": "RSA-OAEP", "kid": "k", "n": "AQ", "e": "AQ"}
            ]
        },
        {"keys": [{"kty": "RSA", "use": "enc", "alg": "RSA1_5", "kid": "k", "n": "AQ", "e": "AQ"}]},
        {"keys": [{"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": "AQ", "e": "AQ"}]},
    ],
    ids=["no-keys", "no-keys-member", "signing-key", "rsa1_5", "no-kid"],
)
def test_browser_refuses_a_jwks_without_a_usable_key(page: Page, jwks: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="no usable encryption key"):
        page.evaluate(ENCRYPT_WITH_GIVEN_JWKS, [jwks, {"login": "a", "password": "b"}])


@pytest.mark.browser
def test_broker_json_documents_forbid_page_fetches(browser: Browser, broker: LiveServer) -> None:
    """The broker's `default-src 'none'` is enforced by a real browser: a document it serves
    cannot script requests (the reason for the test page above)."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(broker.url + "/healthz")
        outcome = page.evaluate(
            """async () => {
                 try { await fetch("/.well-known/jwks.json"); return "fetched"; }
                 catch (e) { return "blocked"; }
               }"""
        )
        assert outcome == "blocked"
    finally:
        context.close()


# -- independent JOSE libraries -----------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [{"login": "alice", "password": "alice-pass"}, {"login": "zoé", "password": "mot de passe ✓"}],
    ids=["ascii", "unicode"],
)
def test_jwcrypto_jwe_with_published_jwk_opens(
    published_jwk: dict[str, Any], key_layer: KeyLayer, credentials: dict[str, str]
) -> None:
    token = jwcrypto_jwe.JWE(
        json.dumps(credentials).encode(),
        protected={"alg": published_jwk["alg"], "enc": "A256GCM", "kid": published_jwk["kid"]},
    )
    token.add_recipient(jwcrypto_jwk.JWK(**published_jwk))
    assert open_credentials(token.serialize(compact=True), key_layer) == credentials


@pytest.mark.parametrize(
    "credentials",
    [{"login": "alice", "password": "alice-pass"}, {"login": "zoé", "password": "mot de passe ✓"}],
    ids=["ascii", "unicode"],
)
def test_joserfc_jwe_with_published_jwk_opens(
    published_jwk: dict[str, Any], key_layer: KeyLayer, credentials: dict[str, str]
) -> None:
    alg = published_jwk["alg"]
    compact = joserfc_jwe.encrypt_compact(
        {"alg": alg, "enc": "A256GCM", "kid": published_jwk["kid"]},
        json.dumps(credentials).encode(),
        JoserfcRsaKey.import_key(published_jwk),
        algorithms=[alg, "A256GCM"],
    )
    assert open_credentials(compact, key_layer) == credentials
