"""The account's HTTP API and pages over real HTTP (uvicorn, SoftHSM, Redis, SQLite), with the
software authenticator of `tests/support/passkeys.py`: the session cookie's flags, requests
from another site refused, the pages' headers; and no re-sync material, recovery code or
session value in clear in SQL, the database files, Redis or the logs (planted values searched
in every spelling, as `test_erasure_and_leaks.py` does).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from sharelock.accounts import AccountService
from sharelock.config import Settings
from sharelock.keys import KeyLayer
from sharelock.web.consent_page import PAGE_CSP
from tests.integration.test_erasure_and_leaks import redis_blobs, spellings, sql_blobs
from tests.support.accounts import account_parts
from tests.support.passkeys import LocalhostSite, SoftAuthenticator, localhost_site

LOGIN_HASH = "hmac-sha256:" + "ef" * 32
PLANTED_TOKEN = "Plant-resync-Q9x2-session-token"
PLANTED_PASSWORD = "Plant-resync-pw-4c1b!"


Site = LocalhostSite


@pytest.fixture(scope="module")
def site(
    settings: Settings,
    key_layer: KeyLayer,
    sandbox_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    with localhost_site(
        settings, key_layer, sandbox_url, tmp_path_factory.mktemp("accounts-http")
    ) as served:
        yield served


@pytest.fixture
async def planter(site: Site, key_layer: KeyLayer) -> AsyncIterator[AccountService]:
    """The broker's account service on the same database, Redis and HSM: what remembering a
    source after a share calls (`Holdings.connect_source`), called here to plant a known
    value."""
    async with account_parts(site.settings, key_layer) as parts:
        yield AccountService(parts)


def create_account(client: httpx.Client, site: Site, passkey: SoftAuthenticator) -> httpx.Response:
    options = client.post("/api/account/new/options", json={"label": "Test key"})
    assert options.status_code == 200, options.text
    started = options.json()
    answer = passkey.create(started["publicKey"], site.url)
    return client.post(
        "/api/account/new", json={"ceremony": started["ceremony"], "credential": answer}
    )


def sign_in(client: httpx.Client, site: Site, passkey: SoftAuthenticator) -> httpx.Response:
    started = client.post("/api/account/sign-in/options").json()
    answer = passkey.get(started["publicKey"], site.url)
    return client.post(
        "/api/account/sign-in", json={"ceremony": started["ceremony"], "credential": answer}
    )


def test_the_session_cookie_is_strict_and_other_sites_are_refused(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=30) as client:
        created = create_account(client, site, SoftAuthenticator())
        assert created.status_code == 200, created.text
        assert created.headers["cache-control"] == "no-store"
        cookie = created.headers["set-cookie"]
        assert cookie.startswith("sl_account=")  # plain http: no __Host- prefix, no Secure
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "path=/", "samesite=strict", "max-age=900"} <= flags
        code = created.json()["recovery_code"]

        page = client.get("/account", params={"done": "created"})
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert page.headers["cache-control"] == "no-store"
        assert "Your passkeys" in page.text and "Your account is ready." in page.text
        assert "Test key" in page.text and code not in page.text

        # A page of another site that makes the browser post here: refused, nothing done.
        foreign = client.post("/api/account/delete", headers={"Origin": "http://evil.example"})
        assert (foreign.status_code, foreign.json()["error"]) == (403, "forbidden")
        exported = client.post("/api/account/export", headers={"Origin": site.url})
        assert exported.status_code == 200
        assert exported.headers["content-disposition"].startswith("attachment;")
        assert exported.json()["passkeys"][0]["label"] == "Test key"

        signed_out = client.post("/api/account/sign-out")
        assert signed_out.status_code == 200 and 'sl_account=""' in signed_out.headers["set-cookie"]
    with httpx.Client(base_url=site.url, timeout=30) as stranger:
        refused = stranger.post("/api/account/export")
        assert (refused.status_code, refused.json()["error"]) == (401, "not_signed_in")
        assert "Sign in with a passkey" in stranger.get("/account").text
        bad = stranger.post("/api/account/recovery", json={"code": "not a code"})
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid_recovery_code")
        wrong = stranger.post("/api/account/sign-in", json={"ceremony": "x" * 43, "credential": {}})
        assert (wrong.status_code, wrong.json()["error"]) == (400, "ceremony_expired")


def test_the_pages_speak_french(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=30) as client:
        page = client.get("/account/new", params={"lang": "fr"})
        assert page.status_code == 200 and page.headers["content-language"] == "fr"
        assert "Créer mon compte avec une clé d’accès" in page.text
        assert "13\u00a0mois" in page.text  # CLDR: a no-break space


async def test_no_material_code_or_session_in_clear(
    site: Site, planter: AccountService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("uvicorn", "uvicorn.error", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    passkey = SoftAuthenticator()
    with httpx.Client(base_url=site.url, timeout=30) as client:
        created = create_account(client, site, passkey)
        code = created.json()["recovery_code"]
        session = client.cookies["sl_account"]
        signed = await planter.signed_in(session)
        assert signed is not None
        material = f'{{"token":"{PLANTED_TOKEN}","password":"{PLANTED_PASSWORD}"}}'.encode()
        kept = await planter.holdings.connect_source(
            signed.account_id, "sandbox-bank", LOGIN_HASH, material
        )
        other = await planter.holdings.connect_source(
            signed.account_id, "sandbox-bank", "hmac-sha256:" + "12" * 32, material
        )
        page = client.get("/account")
        assert "Banque Sandbox" in page.text and kept in page.text
        assert client.delete(f"/api/account/sources/{other}").status_code == 200
        exported = client.post("/api/account/export").json()
        assert [s["id"] for s in exported["sources"]] == [kept]
        assert sign_in(client, site, passkey).status_code == 200
        # Signing in again ends the session the browser held before.
        assert client.cookies["sl_account"] != session
        assert await planter.signed_in(session) is None
        assert await planter.signed_in(client.cookies["sl_account"]) is not None
        # The needles are really there to be found, in the planter's hands.
        assert PLANTED_TOKEN.encode() in material

    secrets = (PLANTED_TOKEN, PLANTED_PASSWORD, code, code.replace("-", ""), session)
    needles = {needle for value in secrets for needle in spellings(value)}
    # The test's own HTTP client logs the cookies it receives (httpcore, at DEBUG): the
    # broker's records are searched, not the client's.
    broker_logs = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(record.name.startswith("sharelock") for record in broker_logs)
    log_texts = [
        (f"log {r.name}", "\n".join([r.getMessage(), repr(r.args), r.exc_text or ""]).encode())
        for r in broker_logs
    ]
    blobs = [
        *sql_blobs(site.database),
        *redis_blobs(site.redis),
        *log_texts,
        ("export", repr(exported).encode()),
        ("page", page.content),
    ]
    assert any(name.startswith("sql account_sources") for name, _ in blobs)
    assert any(name.startswith("redis GET") for name, _ in blobs)  # the session is there
    found = [
        f"{where}: {needle!r}" for where, blob in blobs for needle in needles if needle in blob
    ]
    assert found == []
