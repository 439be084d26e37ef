"""The consent screen's side of the optional account, as a person uses it, in Debian's headless
Chromium with a virtual authenticator (Chrome DevTools `WebAuthn`: CTAP2, resident keys, user
verification): the offer after a share, then one-click shares (docs/accounts.md).

A whole stack over real HTTP: the broker (SoftHSM, its own Redis, SQLite, its own sandbox
data sources, whose device tokens a test revokes) served as `http://localhost:<port>`
(browsers refuse passkeys on an IP address), and the demo partner on
`http://127.0.0.1:<port>`, another site, as a real partner is: the account's SameSite=Strict
cookie never travels with the navigations that come from it.

- Remember: an anonymous share at Banque Sandbox (alice), approved; the offer; "Remember with a
  passkey" creates an account on the authenticator, shows the recovery code once, keeps the
  source; the partner gets the data. The next share in the same browser is signed in: "Share
  from Banque Sandbox", no password typed, the review, the data at the partner, no new offer.
  With the cookies gone, "Have an account? Sign in with a passkey" signs in on the page.
- A revoked source: the source stops taking its device token; the one click says "Banque
  Sandbox asks you to sign in again" and opens the password form; the account page says so in
  a card at its top (gone once the source is remembered again); the next share shows the
  source as needing a sign-in (no button); signed in with the password, the offer says "Add
  Banque Sandbox to your account", and one click works again.
- No thanks: after a passkey refused by the authenticator (said so, "No thanks" still there),
  "No thanks" goes on to the partner and no account is made.

axe-core checks every new state of the page (the offer, the recovery code, the one-click
section, the sign-in link, a refusal, the account page with a failing source); screenshots
`account-offer-*.png`, `account-one-click-*.png` and `account-08-failing-*.png`. The browser's
own record shows no clear password or recovery code sent, no other host, no console error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, CDPSession, Page, expect
from sqlalchemy import Engine, func, select

from sharelock.config import Settings
from sharelock.db import AccountRow, AccountSourceRow
from sharelock.demo.partner_site import PartnerConfig, create_partner_app
from sharelock.keys import KeyLayer
from sharelock.registry import PartnerRegistry
from sharelock.scopes import SCOPES
from tests.support.browser import Watch, chromium
from tests.support.passkeys import PasskeyPage, localhost_site, passkey_page
from tests.support.sandbox import serve_sandbox
from tests.support.server import LiveServer, serve_app

pytestmark = pytest.mark.browser

PARTNER_NAME = "Demo Shop"
PASSWORD = "alice-pass"
RECOVERY_CODE = re.compile(r"([A-Z2-7]{4}-){7}[A-Z2-7]{4}")


@dataclass(frozen=True)
class Site:
    broker: LiveServer
    partner: LiveServer
    engine: Engine
    sandbox: str

    def revoke_device_tokens(self) -> None:
        """The bank forgets every device it remembered (its control endpoint)."""
        answer = httpx.post(
            f"{self.sandbox}/_control/sandbox-bank", json={"revoke_device_tokens": True}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["revoked_device_tokens"], answer.json()

    def count(self, row: Any) -> int:
        with self.engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(row)) or 0)


@pytest.fixture(scope="module")
def site(
    settings: Settings, key_layer: KeyLayer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("account-share")
    with (
        serve_sandbox() as sandbox_url,
        localhost_site(settings, key_layer, sandbox_url, directory) as broker,
    ):
        registry = PartnerRegistry(broker.engine)

        def partner_app(url: str) -> Any:
            partner, secret = registry.add(
                name=PARTNER_NAME,
                redirect_uris=[f"{url}/callback"],
                scopes=list(SCOPES),
                purpose="Open a customer account (demonstration)",
                home_url=f"{url}/",
            )
            return create_partner_app(
                PartnerConfig(
                    broker.url, partner.client_id, secret, f"{url}/callback", PARTNER_NAME
                )
            )

        with serve_app(partner_app) as partner:
            yield Site(broker.server, partner, broker.engine, sandbox_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


class Person(PasskeyPage):
    """One person, one browser context and page, and the authenticator attached to it."""

    def __init__(self, site: Site, page: Page, cdp: CDPSession, watch: Watch) -> None:
        super().__init__(page, cdp, watch)
        self.site = site

    def focused(self) -> str:
        return str(self.page.evaluate("() => document.activeElement && document.activeElement.id"))

    def start(self) -> None:
        """From the partner's page to the consent screen's first step."""
        self.page.goto(self.site.partner.url + "/")
        self.page.click("#share")
        self.page.wait_for_url(re.compile(re.escape(self.site.broker.url) + r"/consent/[\w-]+"))
        expect(self.page.locator("#step-request")).to_be_visible()

    def share_with_password(self) -> None:
        expect(self.page.locator("#source-sandbox-bank")).to_be_checked()
        self.page.click("#source-form button[type=submit]")
        expect(self.page.locator("#step-login")).to_be_visible()
        self.page.fill("#login", "alice")
        self.page.fill("#password", PASSWORD)
        self.page.click("#login-form button[type=submit]")
        self.reviewed()

    def reviewed(self) -> None:
        expect(self.page.locator("#step-review")).to_be_visible()
        expect(self.page.locator("#review-fields")).to_contain_text("Martin")

    def approve(self) -> None:
        self.page.click("#approve")
        expect(self.page.locator("#step-done")).to_be_visible()
        assert self.focused() == "done-title"
        expect(self.page.locator("#done-receipt")).to_be_visible()

    def received(self) -> dict[str, str]:
        self.page.wait_for_url(re.compile(re.escape(self.site.partner.url) + r"/callback\?"))
        expect(self.page.locator("#data")).to_be_visible()
        cells = self.page.locator("#data dd[data-field]")
        return {
            str(cells.nth(i).get_attribute("data-field")): cells.nth(i).inner_text()
            for i in range(cells.count())
        }

    def account_page(self) -> None:
        self.page.goto(self.site.broker.url + "/account")
        expect(self.page.locator("#sources")).to_be_visible()

    def flow_requests(self, suffix: str) -> list[str]:
        return [r.url for r in self.watch.requests if r.url.endswith(suffix)]

    def finish(self, secrets: list[str]) -> None:
        self.watch.assert_no_secret_sent(secrets)
        self.watch.assert_only_hosts(self.site.broker.url, self.site.partner.url)
        self.watch.assert_clean()


@pytest.fixture
def person(site: Site, browser: Browser) -> Iterator[Person]:
    with passkey_page(browser) as (page, cdp, watch):
        yield Person(site, page, cdp, watch)


def test_remember_after_a_share_then_share_in_one_click(person: Person, site: Site) -> None:
    page = person.page
    person.authenticator()
    accounts_before = site.count(AccountRow)
    sources_before = site.count(AccountSourceRow)

    # An anonymous share: no account section but the way to sign in.
    person.start()
    expect(page.locator("#account-sign-in")).to_be_visible()
    expect(page.locator("#one-click")).to_be_hidden()
    person.share_with_password()
    person.approve()

    # The offer, instead of the way on: asked, never presumed.
    offer = page.locator("#offer")
    expect(offer).to_be_visible()
    expect(page.locator("#offer-title")).to_have_text("Share in one click next time?")
    expect(page.locator("#offer-text")).to_have_text(
        "Remember Banque Sandbox in a Sharelock account, signed in with a passkey: no password "
        "to type next time. Nothing is kept if you say no."
    )
    expect(page.locator("#offer-remember")).to_have_text("Remember with a passkey")
    expect(page.locator("#offer-decline")).to_have_text("No thanks")
    expect(page.locator("#done-link")).to_be_hidden()
    person.check("the offer", "account-offer")

    # Remember: an account on the authenticator, its recovery code once, the source kept.
    page.click("#offer-remember")
    expect(page.locator("#offer-remembered")).to_have_text(
        "Banque Sandbox is remembered in your account: next time, share in one click."
    )
    expect(page.locator("#offer-code")).to_be_visible()
    code = page.locator("#offer-recovery-code").inner_text()
    assert RECOVERY_CODE.fullmatch(code), code
    assert person.focused() == "offer-code-title"
    expect(page.locator("#offer-actions")).to_be_hidden()
    expect(page.locator("#done-link")).to_have_text(f"Continue to {PARTNER_NAME}")
    person.check("remembered, the recovery code")
    assert site.count(AccountRow) == accounts_before + 1
    with site.engine.connect() as connection:
        kept = [
            tuple(row)
            for row in connection.execute(
                select(AccountSourceRow.data_source, AccountSourceRow.status)
            )
        ]
    assert len(kept) == sources_before + 1 and ("sandbox-bank", "connected") in kept

    page.click("#done-link")
    first = person.received()
    assert first["identity.family_name"] == "Martin", first

    # The next share, signed in in this browser: one click, no password typed.
    person.start()
    one_click = page.locator("#one-click")
    expect(one_click).to_be_visible()
    expect(page.locator("#one-click-title")).to_have_text("Share in one click")
    button = one_click.get_by_role("button", name="Share from Banque Sandbox")
    expect(button).to_be_visible()
    expect(page.locator("#account-sign-in-box")).to_be_hidden()
    person.check("one-click section", "account-one-click")
    credentials_before = len(person.flow_requests("/credentials"))
    button.click()
    person.reviewed()
    assert len(person.flow_requests("/one-click")) == 1
    assert len(person.flow_requests("/credentials")) == credentials_before
    person.approve()
    # Collected without a password: nothing new to remember.
    expect(page.locator("#offer")).to_be_hidden()
    expect(page.locator("#done-link")).to_be_visible()
    page.click("#done-link")
    assert person.received() == first

    # Signed out (the cookies gone): sign in with the passkey on the consent screen itself.
    page.context.clear_cookies()
    person.start()
    expect(page.locator("#one-click")).to_be_hidden()
    expect(page.locator("#account-sign-in")).to_have_text("Have an account? Sign in with a passkey")
    person.check("sign-in link")
    page.click("#account-sign-in")
    expect(page.locator("#one-click")).to_be_visible()
    assert person.focused() == "one-click-title"
    expect(page.locator("#account-sign-in-box")).to_be_hidden()
    page.get_by_role("button", name="Share from Banque Sandbox").click()
    person.reviewed()
    person.approve()
    page.click("#done-link")
    assert person.received() == first

    assert site.count(AccountRow) == accounts_before + 1
    person.finish([PASSWORD, code, code.replace("-", "")])


def test_a_revoked_source_signs_in_again_then_is_remembered_again(
    person: Person, site: Site
) -> None:
    page = person.page
    person.authenticator()
    person.start()
    person.share_with_password()
    person.approve()
    page.click("#offer-remember")
    expect(page.locator("#offer-remembered")).to_be_visible()
    page.click("#done-link")
    person.received()

    # The bank stops taking its device token: sign in again, with the password.
    site.revoke_device_tokens()
    person.start()
    page.get_by_role("button", name="Share from Banque Sandbox").click()
    expect(page.locator("#step-login")).to_be_visible()
    expect(page.locator("#login-error")).to_have_text("Banque Sandbox asks you to sign in again.")
    assert person.focused() == "login-error"
    person.check("one click refused, sign in again")

    # The account page says so at its top: a card with a heading, not an alarm.
    person.account_page()
    failing = page.locator("#failing")
    expect(failing.get_by_role("heading")).to_have_text("A data source needs your password again")
    expect(failing).to_contain_text(
        "Banque Sandbox no longer accepts what your account keeps. Share once with your "
        "password and remember it again."
    )
    expect(page.locator("[role=alert]:visible")).to_have_count(0)
    expect(page.locator("#sources")).to_contain_text("Not working")
    person.check("account page, a failing source", "account-08-failing")

    # The next share shows the source as needing a sign-in, not as a button.
    person.start()
    one_click = page.locator("#one-click")
    expect(one_click).to_contain_text("Banque Sandbox needs you to sign in again")
    expect(one_click.get_by_role("button")).to_have_count(0)
    person.check("one-click section, a failing source")
    person.share_with_password()
    person.approve()

    # Signed in: the offer adds the source to the account; no new account, no code.
    expect(page.locator("#offer-text")).to_have_text(
        "Add Banque Sandbox to your Sharelock account: no password to type next time. "
        "Nothing is kept if you say no."
    )
    expect(page.locator("#offer-remember")).to_have_text("Add to my account")
    person.check("the offer, signed in")
    accounts = site.count(AccountRow)
    page.click("#offer-remember")
    expect(page.locator("#offer-remembered")).to_be_visible()
    expect(page.locator("#offer-code")).to_be_hidden()
    assert person.focused() == "offer-remembered"
    assert site.count(AccountRow) == accounts
    page.click("#done-link")
    person.received()
    person.account_page()
    expect(page.locator("#failing")).to_have_count(0)  # remembered again: nothing to say

    # One click works again.
    person.start()
    page.get_by_role("button", name="Share from Banque Sandbox").click()
    person.reviewed()
    person.finish([PASSWORD])


def test_no_thanks_after_a_refused_passkey_makes_no_account(person: Person, site: Site) -> None:
    page = person.page
    # An authenticator that cannot verify its user: the broker requires verification.
    person.authenticator(isUserVerified=False)
    accounts_before = site.count(AccountRow)
    sources_before = site.count(AccountSourceRow)

    person.start()
    person.share_with_password()
    person.approve()
    expect(page.locator("#offer")).to_be_visible()

    page.click("#offer-remember")
    error = page.locator("#offer-error")
    expect(error).to_have_text("The passkey request was cancelled or timed out.")
    assert person.focused() == "offer-error"
    expect(page.locator("#offer-decline")).to_be_enabled()
    expect(page.locator("#offer-code")).to_be_hidden()
    person.check("the offer, a passkey refused")

    page.click("#offer-decline")
    data = person.received()
    assert data["identity.family_name"] == "Martin", data
    assert site.count(AccountRow) == accounts_before
    assert site.count(AccountSourceRow) == sources_before
    remembered = [r for r in person.watch.requests if r.url.endswith("/remember")]
    assert [r.post_data_json for r in remembered] == [{"remember": False}]
    person.finish([PASSWORD])
