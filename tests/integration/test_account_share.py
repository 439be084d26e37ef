"""The optional account in a share, over real HTTP (uvicorn on `localhost`, SoftHSM, Redis,
SQLite, the sandbox portals), with the software authenticator of `tests/support/passkeys.py`:

- after a share collected with a password, the offer to remember the source; "yes" keeps the
  source's device token sealed in the HSM for the account's row, "no" keeps nothing and the
  token is forgotten at the source;
- the one-click share: a signed-in person collects with the remembered source, no password
  typed, then reviews and approves as always; a source that revoked the token is marked
  failing and says so;
- the periodic re-sync (allowed per source): a sign-in check that collects and keeps nothing;
- nothing of the material in clear in Redis, SQL or the logs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from sharelock.accounts import AccountParts, SourceSync
from sharelock.config import Settings
from sharelock.connectors import Outcome, RemembersDevice, build_connectors
from sharelock.db import AccountSourceRow
from sharelock.flow.records import REMEMBER_OFFER
from sharelock.keys import KeyLayer
from sharelock.registry import PartnerRegistry
from tests.integration.test_erasure_and_leaks import redis_blobs, spellings, sql_blobs
from tests.support.accounts import account_parts
from tests.support.broker import REDIRECT_URI, Share, Stack, record_key, register
from tests.support.passkeys import LocalhostSite, SoftAuthenticator, localhost_site


@pytest.fixture(scope="module")
def site(
    settings: Settings,
    key_layer: KeyLayer,
    sandbox_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalhostSite]:
    directory = tmp_path_factory.mktemp("account-share")
    with localhost_site(
        settings, key_layer, sandbox_url, directory, connector_timeout=2.0
    ) as served:
        yield served


@pytest.fixture(scope="module")
def stack(site: LocalhostSite) -> Stack:
    registry = PartnerRegistry(site.engine)
    partner = register(registry, "Partner A", REDIRECT_URI)
    other = register(registry, "Partner B", "https://other.example/cb")
    return Stack(site.server, site.settings, partner, other, registry, site.engine)


@pytest.fixture
async def parts(stack: Stack, key_layer: KeyLayer) -> AsyncIterator[AccountParts]:
    """The account's parts on the broker's database, Redis and HSM, for what a test looks at
    or runs beside the server (the periodic re-sync)."""
    async with account_parts(stack.settings, key_layer) as parts:
        yield parts


def create_account(client: httpx.Client, url: str, passkey: SoftAuthenticator) -> dict[str, Any]:
    started = client.post("/api/account/new/options", json={"label": "Test key"}).json()
    answer = passkey.create(started["publicKey"], url)
    created = client.post(
        "/api/account/new", json={"ceremony": started["ceremony"], "credential": answer}
    )
    assert created.status_code == 200, created.text
    body: dict[str, Any] = created.json()
    return body


def approve(share: Share) -> dict[str, Any]:
    decision = share.decide(True)
    assert decision.status_code == 200, decision.text
    body: dict[str, Any] = decision.json()
    return body


def deliver(share: Share, continue_url: str) -> dict[str, Any]:
    token = share.exchange(share.continue_to_partner(continue_url))
    assert token.status_code == 200, token.text
    shared = share.fetch(token.json()["access_token"])
    assert shared.status_code == 200, shared.text
    body: dict[str, Any] = shared.json()
    return body


def remember(share: Share, yes: bool) -> httpx.Response:
    return share.browser.post(f"/api/flows/{share.flow_id}/remember", json={"remember": yes})


def one_click(share: Share, source_id: str) -> httpx.Response:
    return share.browser.post(f"/api/flows/{share.flow_id}/one-click", json={"source": source_id})


def remembered_share(
    stack: Stack, passkey: SoftAuthenticator, share: Share | None = None
) -> tuple[Share, str]:
    """A share by alice at the bank (`share`, if given, already collected), approved,
    remembered in a new account; delivered."""
    if share is None:
        share = Share(stack)
        share.collect()
    decision = approve(share)
    assert decision["remember_offer"] == {
        "data_source": "sandbox-bank",
        "name": "Banque Sandbox",
        "signed_in": False,
    }
    created = create_account(share.browser, stack.url, passkey)
    assert created["recovery_code"]
    kept = remember(share, True)
    assert kept.status_code == 200, kept.text
    assert kept.json()["remembered"] is True
    source_id: str = kept.json()["source"]
    assert deliver(share, decision["redirect_to"])["data"]["identity"]["given_name"] == "Alice"
    return share, source_id


async def test_a_remembered_source_shares_in_one_click(
    site: LocalhostSite, stack: Stack, parts: AccountParts, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first = Share(stack)
    first.collect()
    offer = await parts.records.get(REMEMBER_OFFER, first.flow_id)
    assert offer is not None and offer.device_token
    first, source_id = remembered_share(stack, SoftAuthenticator(), first)
    with stack.engine.connect() as connection:  # type: ignore[union-attr]
        row = connection.execute(
            select(AccountSourceRow.sealed_material, AccountSourceRow.status).where(
                AccountSourceRow.id == source_id
            )
        ).one()
    assert row.sealed_material and row.status == "connected"

    # Later, in the same browser (still signed in): no password typed.
    second = Share(stack)
    second.browser = first.browser
    assert second.start().status_code == 303
    described = second.describe().json()["account"]
    assert described["available"] and described["signed_in"]
    assert described["sources"] == [
        {
            "id": source_id,
            "data_source": "sandbox-bank",
            "name": "Banque Sandbox",
            "status": "connected",
        }
    ]
    collected = one_click(second, source_id)
    assert collected.status_code == 200, collected.text
    assert collected.json() == {"status": "collected"}
    decision = approve(second)
    assert "remember_offer" not in decision  # nothing typed, nothing new to remember
    data = deliver(second, decision["redirect_to"])["data"]
    assert data["bank_account"]["iban"] == "FR7699990000010001234567834"
    rows = stack.audit_rows("credentials_received", flow_id=second.flow_id)
    assert [r.outcome for r in rows] == ["remembered"]
    assert stack.audit_rows("account_source_connected")

    # Nothing of the material in clear: the password and the device token, anywhere.
    planted = spellings("alice-pass") | spellings(offer.device_token)
    assert not any(p in blob for _, blob in sql_blobs(site.database) for p in planted)
    assert not any(p in blob for _, blob in redis_blobs(site.redis) for p in planted)
    assert not any(p in caplog.text.encode() for p in planted)


async def test_no_thanks_keeps_nothing_and_the_source_forgets_the_token(
    stack: Stack, parts: AccountParts
) -> None:
    share = Share(stack)
    share.collect()
    key = record_key(REMEMBER_OFFER, share.flow_id)
    assert stack.raw_redis().exists(key)  # sealed, within the session
    offer = await parts.records.get(REMEMBER_OFFER, share.flow_id)
    assert offer is not None and offer.device_token and offer.envelope is None
    decision = approve(share)
    assert decision["remember_offer"]["signed_in"] is False
    refused = remember(share, False)
    assert refused.json() == {"remembered": False}
    assert not stack.raw_redis().exists(key)
    connectors = build_connectors(stack.settings)
    try:
        bank = connectors["sandbox-bank"]
        assert isinstance(bank, RemembersDevice)
        tried = await bank.resume(offer.device_token, ())
        assert tried.outcome is Outcome.DEVICE_TOKEN_REVOKED  # forgotten at the source
    finally:
        for connector in connectors.values():
            await connector.aclose()
    answered = share.browser.post(f"/api/flows/{share.flow_id}/remember", json={"remember": False})
    assert answered.json() == {"remembered": False}  # nothing left: still nothing kept
    deliver(share, decision["redirect_to"])


def test_going_on_without_answering_declines(stack: Stack) -> None:
    share = Share(stack)
    assert share.start().status_code == 303
    page = share.browser.get(f"/consent/{share.flow_id}").text
    assert 'id="retention-account"' in page  # the page says what an account would keep
    share.collect_started()
    decision = approve(share)
    deliver(share, decision["redirect_to"])
    assert not stack.raw_redis().exists(record_key(REMEMBER_OFFER, share.flow_id))


def test_the_offer_needs_an_account_and_one_click_a_signed_in_one(stack: Stack) -> None:
    share = Share(stack)
    share.collect()
    approve(share)
    refused = remember(share, True)
    assert refused.status_code == 401
    assert refused.json()["error"] == "not_signed_in"
    other = Share(stack)
    assert other.start().status_code == 303
    assert other.describe().json()["account"]["signed_in"] is False
    clicked = one_click(other, "as_" + "0" * 32)
    assert clicked.status_code == 401


def test_a_revoked_token_marks_the_source_failing(stack: Stack, sandbox_url: str) -> None:
    first, source_id = remembered_share(stack, SoftAuthenticator())
    revoked = httpx.post(
        f"{sandbox_url}/_control/sandbox-bank", json={"revoke_device_tokens": True}, timeout=10
    )
    assert revoked.status_code == 200, revoked.text
    second = Share(stack)
    second.browser = first.browser
    assert second.start().status_code == 303
    failed = one_click(second, source_id)
    assert failed.status_code == 200, failed.text
    assert failed.json()["status"] == "failed"
    assert failed.json()["reason"] == Outcome.DEVICE_TOKEN_REVOKED.value
    listed = second.describe().json()["account"]["sources"]
    assert [s["status"] for s in listed] == ["failing"]
    overview = second.browser.post("/api/account/export").json()
    assert [s["status"] for s in overview["sources"]] == ["failing"]
    # The person signs in again with the password: the share goes on.
    second.collect_started()


async def test_the_periodic_resync_checks_and_keeps_nothing(
    stack: Stack, parts: AccountParts
) -> None:
    first, source_id = remembered_share(stack, SoftAuthenticator())
    allowed = first.browser.post(f"/api/account/sources/{source_id}/sync", json={"allowed": True})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json() == {"sync_consent": True, "changed": True}
    connectors = build_connectors(stack.settings)
    try:
        sync = SourceSync(parts, connectors)
        checked = await sync.sync_due(timedelta(0))
        assert checked >= 1
        assert await sync.sync_due(timedelta(hours=1)) == 0  # just synced: not due
    finally:
        for connector in connectors.values():
            await connector.aclose()
    rows = [r for r in stack.audit_rows("account_source_synced") if r.outcome == "ok"]
    assert rows and all(r.data_source == "sandbox-bank" for r in rows)
    overview = first.browser.post("/api/account/export").json()
    source = next(s for s in overview["sources"] if s["id"] == source_id)
    assert source["status"] == "connected" and source["last_sync_at"]


def test_a_row_whose_material_does_not_open_fails_closed(stack: Stack) -> None:
    """A sealed blob altered in the database (or moved from another row): nothing to sign in
    with, so nothing is sent to the source; the source is marked failing and the person may
    sign in with the password."""
    first, source_id = remembered_share(stack, SoftAuthenticator())
    assert stack.engine is not None
    with stack.engine.begin() as connection:
        sealed = connection.execute(
            select(AccountSourceRow.sealed_material).where(AccountSourceRow.id == source_id)
        ).scalar_one()
        flipped = bytes(sealed[:-1]) + bytes([sealed[-1] ^ 1])
        connection.execute(
            update(AccountSourceRow)
            .where(AccountSourceRow.id == source_id)
            .values(sealed_material=flipped)
        )
    second = Share(stack)
    second.browser = first.browser
    assert second.start().status_code == 303
    failed = one_click(second, source_id)
    assert failed.status_code == 200, failed.text
    assert failed.json()["reason"] == Outcome.DEVICE_TOKEN_REVOKED.value
    assert [s["status"] for s in second.describe().json()["account"]["sources"]] == ["failing"]
    second.collect_started()  # the password still works
