"""The account pages as a person uses them, in Debian's headless Chromium with a virtual
authenticator (Chrome DevTools `WebAuthn` domain: CTAP2, resident keys, user verification),
over a whole broker on real HTTP (SoftHSM, Redis, SQLite) served as `http://localhost:<port>`
(browsers refuse passkeys on an IP address).

One journey, each step checked with axe-core and photographed at desktop and phone widths:
create an account with a passkey and see the recovery code once; sign out; sign in with the
passkey; add a second passkey (on a second authenticator); remove the first; see a connected
source and the history of shares; turn its daily check on (said, kept after a reload) and off
again; export everything; revoke the source; delete the account;
then the same passkey is refused. The browser's own record shows no console error, no other
host, and the session cookie only ever set HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, CDPSession, Page, expect
from sqlalchemy import select

from sharelock.accounts import SourceBinding, seal_material
from sharelock.accounts.sources import Source, add_source
from sharelock.audit import AuditEvent, AuditTrail, EventType
from sharelock.clock import SYSTEM_CLOCK, utc
from sharelock.config import Settings
from sharelock.db import AccountRow, AccountSourceRow
from sharelock.keys import KeyLayer
from sharelock.registry import PartnerRegistry
from tests.support.browser import Watch, chromium
from tests.support.passkeys import LocalhostSite, PasskeyPage, localhost_site, passkey_page

pytestmark = pytest.mark.browser

LOGIN_HASH = "hmac-sha256:" + "5e" * 32


@pytest.fixture(scope="module")
def site(
    settings: Settings,
    key_layer: KeyLayer,
    sandbox_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalhostSite]:
    directory = tmp_path_factory.mktemp("accounts-browser")
    with localhost_site(settings, key_layer, sandbox_url, directory) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Person(PasskeyPage):
    """One person, one browser context, one page, and the authenticators attached to it."""

    def __init__(self, site: LocalhostSite, page: Page, cdp: CDPSession, watch: Watch) -> None:
        super().__init__(page, cdp, watch)
        self.site = site

    def arrive(self, done: str) -> None:
        self.page.wait_for_url(re.compile(re.escape(self.site.url) + r"/account\?.*done=" + done))
        expect(self.page.locator("#done")).to_be_visible()

    def passkey_labels(self) -> list[str]:
        cells = self.page.locator("#passkeys tbody tr td:first-child")
        return [cells.nth(i).inner_text() for i in range(cells.count())]


@pytest.fixture
def person(site: LocalhostSite, browser: Browser) -> Iterator[Person]:
    with passkey_page(browser, accept_downloads=True) as (page, cdp, watch):
        yield Person(site, page, cdp, watch)


def plant_a_source_and_shares(site: LocalhostSite, key_layer: KeyLayer, account_id: str) -> None:
    """What the flow will do after a share (not built yet): keep the source, sealed; and the
    audit rows of two shares made with that login."""
    source = Source(
        "as_" + "7" * 32, account_id, "sandbox-bank", LOGIN_HASH, False, "connected",
        utc(SYSTEM_CLOCK), None, False,
    )  # fmt: skip
    binding = SourceBinding(source.id, account_id, source.data_source, LOGIN_HASH)
    sealed = seal_material(key_layer, b'{"session_token":"sandbox-token"}', binding)
    add_source(site.engine, source, sealed, utc(SYSTEM_CLOCK))
    partner, _ = PartnerRegistry(site.engine).add(
        name="Demo Shop", redirect_uris=["https://shop.example/cb"], scopes=["identity"]
    )
    trail = AuditTrail(site.engine)
    for event, extra in (
        (EventType.CONSENT_GIVEN, {}),
        (EventType.DATA_DELIVERED, {"delivery_key": "d" * 64}),
    ):
        trail.record(
            AuditEvent(
                event,
                client_id=partner.client_id,
                data_source="sandbox-bank",
                login_hash=LOGIN_HASH,
                flow_ref="f" * 64,
                outcome="approved" if event is EventType.CONSENT_GIVEN else "delivered",
                **extra,
            )
        )


def sync_consents(site: LocalhostSite) -> list[bool]:
    """Each kept source's consent to the periodic re-sync, as the database holds it."""
    with site.engine.connect() as connection:
        return [bool(v) for v in connection.scalars(select(AccountSourceRow.sync_consent))]


def test_an_account_from_creation_to_deletion(
    person: Person, site: LocalhostSite, key_layer: KeyLayer
) -> None:
    page = person.page
    first = person.authenticator()

    # Creation: a passkey, then the recovery code, once.
    page.goto(site.url + "/account/new")
    expect(page.locator("#create")).to_be_visible()
    person.check("new account", "account-01-new")
    page.fill("#passkey-label", "My laptop")
    page.click("#create")
    expect(page.locator("#code-section")).to_be_visible()
    code = page.locator("#recovery-code").inner_text()
    assert re.fullmatch(r"([A-Z2-7]{4}-){7}[A-Z2-7]{4}", code)
    assert person.page.evaluate("() => document.activeElement.id") == "code-title"
    person.check("recovery code", "account-02-recovery-code")
    page.click("#code-continue")
    person.arrive("created")
    assert person.passkey_labels() == ["My laptop"]
    with site.engine.connect() as connection:
        (account_id,) = connection.scalars(select(AccountRow.id)).all()
    plant_a_source_and_shares(site, key_layer, account_id)
    page.reload()
    expect(page.locator("#sources tbody tr")).to_have_count(1)
    expect(page.locator("#sources")).to_contain_text("Banque Sandbox")
    expect(page.locator("#shares tbody tr")).to_have_count(2)
    expect(page.locator("#shares")).to_contain_text("Demo Shop")
    person.check("account", "account-03-account")
    expect(page.locator("#failing")).to_have_count(0)  # nothing failing, nothing said

    # The daily check: off until ticked, what it does said beside it before anyone agrees;
    # ticked, the broker answers, the page says so, and a reload shows what was kept.
    box = page.get_by_role("checkbox", name="Check the sign-in every day (Banque Sandbox)")
    expect(box).not_to_be_checked()
    expect(box).to_have_accessible_description(
        "A check signs in to Banque Sandbox with what the account keeps: nothing is collected, "
        "nothing is kept."
    )
    with page.expect_response(lambda answer: answer.url.endswith("/sync")) as answered:
        box.click()
    assert answered.value.status == 200
    assert answered.value.json() == {"sync_consent": True, "changed": True}
    expect(page.locator("#status")).to_have_text(
        "Daily check on: Sharelock will sign in to Banque Sandbox once a day, collecting nothing."
    )
    expect(box).to_be_checked()
    assert person.page.evaluate("() => document.activeElement.id") == box.get_attribute("id")
    person.check("daily check on", "account-07-sync")
    page.reload()
    expect(box).to_be_checked()
    assert sync_consents(site) == [True]
    # And off again: the broker forgets the consent.
    with page.expect_response(lambda answer: answer.url.endswith("/sync")) as answered:
        box.click()
    assert answered.value.json() == {"sync_consent": False, "changed": True}
    expect(page.locator("#status")).to_have_text(
        "Daily check off: Sharelock no longer signs in to Banque Sandbox between your shares."
    )
    page.reload()
    expect(box).not_to_be_checked()
    assert sync_consents(site) == [False]

    # Signed out, then in again with the passkey (discoverable: nothing typed).
    page.click("#sign-out")
    person.arrive("signed_out")
    person.check("signed out", "account-04-sign-in")
    page.click("#sign-in")
    person.arrive("signed_in")
    assert person.passkey_labels() == ["My laptop"]

    # A second passkey, on another authenticator (the first is put away: it would refuse to
    # register twice for the same account, as excludeCredentials asks).
    kept = person.cdp.send("WebAuthn.getCredentials", {"authenticatorId": first})["credentials"]
    assert len(kept) == 1 and kept[0]["isResidentCredential"]
    person.cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": first})
    second = person.authenticator()
    page.fill("#passkey-label", "My phone")
    page.click("#add-passkey")
    person.arrive("passkey_added")
    assert person.passkey_labels() == ["My laptop", "My phone"]

    # Remove the first; the second signs in.
    page.locator("#passkeys tr", has_text="My laptop").locator(".remove-passkey").click()
    person.arrive("passkey_removed")
    assert person.passkey_labels() == ["My phone"]
    page.click("#sign-out")
    person.arrive("signed_out")
    page.click("#sign-in")
    person.arrive("signed_in")

    # Export everything: a download made in the page.
    with page.expect_download() as download:
        page.click("#export")
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported["format"] == "sharelock-account-export/1"
    assert [p["label"] for p in exported["passkeys"]] == ["My phone"]
    assert [s["data_source"]["name"] for s in exported["sources"]] == ["Banque Sandbox"]
    assert {s["event"] for s in exported["shares"]} == {"consent_given", "data_delivered"}
    assert "sandbox-token" not in json.dumps(exported)

    # Revoke the source: gone at once.
    page.click(".revoke-source")
    person.arrive("source_revoked")
    expect(page.locator("#sources-none")).to_be_visible()

    # Delete the account, after a confirmation.
    page.click("#delete")
    expect(page.locator("#delete-confirm")).to_be_visible()
    person.check("delete confirmation", "account-05-delete")
    page.click("#delete-yes")
    person.arrive("deleted")
    expect(page.locator("#done")).to_contain_text("deleted")

    # The same passkey is refused now.
    assert person.cdp.send("WebAuthn.getCredentials", {"authenticatorId": second})["credentials"]
    page.click("#sign-in")
    expect(page.locator("#problem")).to_contain_text("belongs to no Sharelock account")
    person.check("passkey refused", "account-06-refused")

    person.watch.assert_only_hosts(site.url)
    # The one refusal (400 at the sign-in) is the only console error; nothing uncaught.
    unexpected = [
        error
        for error in person.watch.console_errors
        if not ("status of 400" in error and "/api/account/sign-in" in error)
    ]
    assert unexpected == [] and person.watch.page_errors == []
    for response in person.watch.broker_answers(site.url, "/"):
        cookie = response.headers.get("set-cookie")
        if cookie:
            assert cookie.startswith("sl_account="), response.url
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie, cookie
