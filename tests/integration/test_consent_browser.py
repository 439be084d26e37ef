"""The consent screen as a person uses it, in Debian's headless Chromium (Playwright).

A whole stack runs over real HTTP: the broker (real SoftHSM, Redis, SQLite, the sandbox data
sources) and the demo partner site, registered in the broker's registry with its own callback.
Each test starts where a person starts, on the partner's page, and ends where they end, back
on the partner's page showing what it received (or that nothing was).

Every test also proves, from what the browser itself recorded:
- no request carried a clear login, password or one-time code (URL, headers, body);
- the page talked to no host but the broker and the partner;
- no console error, no uncaught exception (a CSP violation is a console error too);
- axe-core finds no serious or critical violation on any step.

The main journeys save screenshots at desktop and phone widths into docs/screenshots/, which
docs/user-journey.md shows.

Time is never waited for: a pause of a minute moves the broker's injected clock, ages what Redis
holds, and fast-forwards the page's own clock (`test_a_minute_on_the_receipt_…`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws
from playwright.sync_api import Browser, Page, Route, expect
from sqlalchemy import select

from sharelock.config import Retention, Settings
from sharelock.db import MaintenanceCredentialsRow
from sharelock.demo.partner_site import PartnerConfig, create_partner_app
from sharelock.flow import flow_ref
from sharelock.keys import KeyLayer
from sharelock.scopes import SCOPES
from sharelock.web.consent_page import PAGE_CSP
from tests.support.broker import (
    Share,
    Stack,
    broker_stack,
    flow_keys,
    redis_keys,
    sqlite_url,
)
from tests.support.browser import (
    DESKTOP,
    PHONE,
    ROOT,
    STEP_TIMEOUT_MS,
    Screens,
    Watch,
    check_axe,
    chromium,
)
from tests.support.redis_server import RedisServer
from tests.support.sandbox import source_mode
from tests.support.server import LiveServer, serve_app

pytestmark = pytest.mark.browser

PARTNER_NAME = "Demo Shop"
AXE_REPORT = ROOT / "tests" / "artifacts" / "axe-consent.json"


# -- the stack ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """A running broker and the demo partner registered with it."""

    stack: Stack
    partner: LiveServer

    @property
    def broker(self) -> str:
        return self.stack.url


@contextmanager
def partner_site(stack: Stack, *, identity_verification: bool = True) -> Iterator[LiveServer]:
    """The demo partner, registered once its port (hence its callback) is known; by default
    its declared purpose includes identity verification (so identity data is kept 72 h)."""
    purpose = (
        "Open a customer account, with identity verification (demonstration)"
        if identity_verification
        else "Open a customer account (demonstration)"
    )

    def build(url: str) -> Any:
        partner, secret = stack.registry.add(
            name=PARTNER_NAME,
            redirect_uris=[f"{url}/callback"],
            scopes=list(SCOPES),
            purpose=purpose,
            home_url=f"{url}/",
            identity_verification=identity_verification,
        )
        config = PartnerConfig(
            stack.url, partner.client_id, secret, f"{url}/callback", PARTNER_NAME
        )
        return create_partner_app(config)

    with serve_app(build) as server:
        yield server


def _stack(
    settings: Settings,
    key_layer: KeyLayer,
    redis_server: RedisServer,
    sandbox_url: str,
    directory: Path,
    **overrides: Any,
) -> Any:
    return broker_stack(
        settings,
        key_layer,
        redis_url=redis_server.url,
        sandbox_url=sandbox_url,
        database_url=sqlite_url(directory),
        **overrides,
    )


@pytest.fixture(scope="module")
def site(
    settings: Settings,
    key_layer: KeyLayer,
    redis_server: RedisServer,
    sandbox_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("consent-db")
    with (
        _stack(settings, key_layer, redis_server, sandbox_url, directory) as stack,
        partner_site(stack) as partner,
    ):
        yield Site(stack, partner)


SHORT_CAP = timedelta(seconds=5)


@pytest.fixture(scope="module")
def short_site(
    settings: Settings,
    key_layer: KeyLayer,
    redis_server: RedisServer,
    sandbox_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    """A broker whose sessions last 5 seconds (the cap is configuration, like in production)."""
    retention = Retention(
        session=SHORT_CAP,
        authorization_code=SHORT_CAP,
        access_token=SHORT_CAP,
        pushed_request=SHORT_CAP,
    )
    directory = tmp_path_factory.mktemp("consent-short-db")
    with (
        _stack(
            settings, key_layer, redis_server, sandbox_url, directory, retention=retention
        ) as stack,
        partner_site(stack) as partner,
    ):
        yield Site(stack, partner)


class MovableClock:
    """The broker's clock for a test: the machine's time plus an offset that the test moves
    (`advance`), so that a pause of a minute takes no time. Redis keeps its own clock for
    expiry, so a pause also ages every key there (`pause`)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def age_redis(client: Any, seconds: float) -> None:
    """What `seconds` of Redis time do to its keys: those with less life left are gone (as
    they would have expired), the others have that much less left."""
    elapsed = int(seconds * 1000)
    for key in client.scan_iter(count=1000):
        left = int(client.pttl(key))
        if left <= 0:  # no expiry (-1), or already gone (-2)
            continue
        if left <= elapsed:
            client.delete(key)
        else:
            client.pexpire(key, left - elapsed)


@dataclass(frozen=True)
class ClockedSite(Site):
    """A broker on its own Redis whose time a test moves, and a partner that does not verify
    identity (no identity data is kept after the share)."""

    clock: MovableClock

    def pause(self, seconds: float) -> None:
        self.clock.advance(seconds)
        age_redis(self.stack.raw_redis(), seconds)


@pytest.fixture(scope="module")
def clocked_site(
    settings: Settings,
    key_layer: KeyLayer,
    sandbox_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ClockedSite]:
    clock = MovableClock()
    directory = tmp_path_factory.mktemp("consent-clocked-db")
    with (
        RedisServer(tmp_path_factory.mktemp("consent-clocked-redis")) as own_redis,
        _stack(settings, key_layer, own_redis, sandbox_url, directory, clock=clock) as stack,
        partner_site(stack, identity_verification=False) as partner,
    ):
        yield ClockedSite(stack, partner, clock)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def screens() -> Screens:
    return Screens()


@pytest.fixture(scope="module")
def axe_report() -> Iterator[dict[str, list[str]]]:
    """Every step's axe findings, blocking or not, kept in tests/artifacts/ for review."""
    report: dict[str, list[str]] = {}
    yield report
    AXE_REPORT.parent.mkdir(parents=True, exist_ok=True)
    AXE_REPORT.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")


# -- a person at the keyboard -----------------------------------------------------------


class Person:
    """One person in one browser context: drives the pages and checks each step."""

    def __init__(
        self,
        site: Site,
        page: Page,
        watch: Watch,
        screens: Screens,
        axe_report: dict[str, list[str]],
    ) -> None:
        self.site = site
        self.page = page
        self.watch = watch
        self.screens = screens
        self.axe_report = axe_report

    # checks made at every step

    def check(self, step: str, screenshot: str | None = None) -> None:
        check_axe(self.page, step, self.screens, screenshot, report=self.axe_report)

    def focused(self) -> str:
        return str(self.page.evaluate("() => document.activeElement && document.activeElement.id"))

    # the partner's side

    def open_partner(self, screenshot: str | None = None) -> None:
        self.page.goto(self.site.partner.url + "/")
        expect(self.page.get_by_role("heading", level=1)).to_be_visible()
        self.check("partner home", screenshot)

    def start(self, button: str = "#share") -> None:
        self.page.click(button)
        self.page.wait_for_url(re.compile(re.escape(self.site.broker) + r"/consent/[\w-]+"))
        expect(self.page.locator("#step-request")).to_be_visible()

    # the consent screen

    def pick(self, source: str) -> None:
        # The whole box is the radio's label: a person clicks anywhere in it.
        self.page.click(f"label[for='source-{source}']")
        expect(self.page.locator(f"#source-{source}")).to_be_checked()
        self.page.click("#source-form button[type=submit]")
        expect(self.page.locator("#step-login")).to_be_visible()
        assert self.focused() == "login-title"

    def sign_in(self, login: str, password: str) -> None:
        self.page.fill("#login", login)
        self.page.fill("#password", password)
        self.page.click("#login-form button[type=submit]")

    def wait_for(self, step: str) -> None:
        expect(self.page.locator(f"#step-{step}")).to_be_visible(timeout=STEP_TIMEOUT_MS)

    def enter_otp(self, code: str) -> None:
        self.page.fill("#otp", code)
        self.page.click("#otp-form button[type=submit]")

    def approve(self) -> None:
        """Approve, see the final step, then continue to the partner."""
        self.page.click("#approve")
        self.shared()
        self.page.click("#done-link")
        self.page.wait_for_url(re.compile(re.escape(self.site.partner.url) + r"/callback\?"))

    def shared(self) -> None:
        """The final step after an approval: the receipt to keep, the way on to the partner,
        and no navigation until the person chooses."""
        expect(self.page.locator("#step-done")).to_be_visible(timeout=STEP_TIMEOUT_MS)
        assert self.focused() == "done-title"
        expect(self.page.locator("#done-receipt")).to_be_visible()
        link = self.page.locator("#receipt-download")
        expect(link).to_have_attribute("href", re.compile(r"^blob:"))
        filename = re.compile(r"^sharelock-receipt-\d{4}-\d{2}-\d{2}\.jws$")
        expect(link).to_have_attribute("download", filename)
        # The code is issued only when the person continues (`/consent/{id}/continue`).
        expect(self.page.locator("#done-link")).to_have_attribute(
            "href", re.compile(re.escape(self.site.broker) + r"/consent/[\w-]+/continue$")
        )
        assert self.page.url.startswith(self.site.broker)

    def received(self) -> dict[str, str]:
        expect(self.page.locator("#data")).to_be_visible()
        # The partner names the source as the person knew it, not by its id.
        expect(self.page.locator("#received")).not_to_contain_text("sandbox-")
        cells = self.page.locator("#data dd[data-field]")
        return {
            str(cells.nth(i).get_attribute("data-field")): cells.nth(i).inner_text()
            for i in range(cells.count())
        }

    # what every test proves at the end

    def finish(self, secrets: list[str]) -> None:
        self.watch.assert_no_secret_sent(secrets)
        self.watch.assert_only_hosts(self.site.broker, self.site.partner.url)
        self.watch.assert_clean()
        for response in self.watch.broker_answers(self.site.broker, "/"):
            set_cookie = response.headers.get("set-cookie")
            if set_cookie:
                names = {line.split("=", 1)[0].strip() for line in set_cookie.split("\n")}
                # One cookie per flow, named after it (sharelock.web.session), and no other.
                assert all(re.fullmatch(r"sl_flow_[A-Za-z0-9_-]{32}", n) for n in names), (
                    f"{response.url} sets cookies {names}"
                )
        for prefix in ("/consent/", "/api/"):
            for response in self.watch.broker_answers(self.site.broker, prefix):
                headers = response.headers
                assert headers.get("cache-control") == "no-store", response.url
                assert headers.get("referrer-policy") == "no-referrer", response.url
                assert headers.get("x-content-type-options") == "nosniff", response.url
                if prefix == "/consent/" and response.status == 200:
                    assert headers.get("content-security-policy") == PAGE_CSP


@pytest.fixture
def person_factory(
    browser: Browser, screens: Screens, axe_report: dict[str, list[str]]
) -> Iterator[Callable[..., Person]]:
    contexts = []

    def make(site: Site, locale: str = "en-GB", **options: Any) -> Person:
        options.setdefault("viewport", DESKTOP)
        context = browser.new_context(locale=locale, **options)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        contexts.append(context)
        watch = Watch()
        watch.attach(context)
        page = context.new_page()
        return Person(site, page, watch, screens, axe_report)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def person(site: Site, person_factory: Callable[..., Person]) -> Person:
    return person_factory(site)


# -- the journeys -------------------------------------------------------------------------


def verify_receipt_with_jwcrypto(site: Site, receipt: str) -> dict[str, Any]:
    """The receipt's claims, checked by jwcrypto against the broker's published `use: sig`
    key (fetched like any client would); raises if the signature does not verify."""
    published = httpx.get(site.broker + "/.well-known/jwks.json", timeout=10).json()
    signing = [key for key in published["keys"] if key.get("use") == "sig"]
    assert len(signing) == 1, published
    token = jwcrypto_jws.JWS()
    token.deserialize(receipt)
    token.verify(jwcrypto_jwk.JWK(**signing[0]), alg="ES256")
    assert token.jose_header["typ"] == "sharelock-consent-receipt"
    claims: dict[str, Any] = json.loads(token.payload)
    assert claims["iss"] == site.broker
    return claims


def identity_copies(stack: Stack, flow_id: str) -> list[str]:
    """The Redis keys of the identity data kept for verification after this flow's share
    (named by the flow's audit reference, whatever slot tag precedes it)."""
    ref = flow_ref(flow_id)
    return [k for k in redis_keys(stack.raw_redis(), "sl:identity:*") if ref in k]


def tab_to(page: Page, selector: str, limit: int = 30) -> None:
    """Press Tab until the element has the focus: proves it is reachable by keyboard."""
    target = page.locator(selector)
    for _ in range(limit):
        if target.evaluate("(element) => element === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} is not reachable with Tab")


def test_bank_share_by_keyboard_from_button_to_received_data(person: Person, site: Site) -> None:
    page = person.page
    person.open_partner("01-partner-home")
    tab_to(page, "#share")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(site.broker) + r"/consent/[\w-]+"))

    # Who asks, what, why, how long; the only source able to give all of it, pre-selected.
    request = page.locator("#step-request")
    expect(request).to_be_visible()
    expect(page.locator("#needs-js")).to_be_hidden()
    expect(page.locator("#request-title")).to_have_text("Demo Shop asks for your data")
    expect(request).to_contain_text(
        "Open a customer account, with identity verification (demonstration)"
    )
    expect(request.locator("#retention-identity")).to_contain_text("72 hours at most")
    expect(request).to_contain_text("IBAN")
    expect(request.locator(".fields li", has_text="Gender")).to_contain_text("Optional")
    expect(request.locator(".fields li", has_text="Family name")).to_contain_text("Required")
    expect(request).to_contain_text("kept encrypted for 1 hour at most")
    expect(request).to_contain_text("kept 13 months for audits")
    expect(page.locator("#source-sandbox-bank")).to_be_checked()
    expect(page.locator("#countdown-value")).to_have_text(re.compile(r"^(1:00:00|59:\d\d)$"))
    person.check("request", "02-request")

    tab_to(page, "#source-form button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("#step-login")).to_be_visible()
    assert person.focused() == "login-title"
    expect(page.locator("#login-label")).to_have_text("Customer id")
    person.check("login", "03-login")

    tab_to(page, "#login")
    page.keyboard.type("alice")
    page.keyboard.press("Tab")
    page.keyboard.type("alice-pass")
    page.keyboard.press("Enter")
    # The fields are emptied before anything is sent.
    expect(page.locator("#login")).to_have_value("")
    expect(page.locator("#password")).to_have_value("")

    person.wait_for("review")
    assert person.focused() == "review-title"
    review = page.locator("#review-fields")
    expect(review).to_contain_text("Martin")
    expect(review).to_contain_text("FR76 9999 0000 0100 0123 4567 834")  # print format
    expect(page.locator("#share-identity-gender")).to_be_checked()
    assert page.locator("#review-fields input[type=checkbox]").count() == 3
    expect(page.locator("#steps [aria-current=step]")).to_contain_text("Review")
    person.check("review", "04-review")

    # Space toggles an optional field; Enter on it decides nothing.
    tab_to(page, "#share-identity-gender")
    page.keyboard.press("Space")
    expect(page.locator("#share-identity-gender")).not_to_be_checked()
    page.keyboard.press("Space")
    page.keyboard.press("Enter")
    expect(page.locator("#share-identity-gender")).to_be_checked()
    expect(page.locator("#step-review")).to_be_visible()
    assert not [r for r in person.watch.requests if r.url.endswith("/decision")]

    tab_to(page, "#approve")
    page.keyboard.press("Enter")
    # The last step: "Shared with Demo Shop", the receipt, then on to the partner by choice.
    person.shared()
    expect(page.locator("#done-title")).to_have_text("Shared with Demo Shop")
    person.check("shared, receipt", "13-shared")
    tab_to(page, "#receipt-download")
    with page.expect_download() as downloading:
        page.keyboard.press("Enter")
    download = downloading.value
    assert re.fullmatch(r"sharelock-receipt-\d{4}-\d{2}-\d{2}\.jws", download.suggested_filename)
    receipt = Path(download.path()).read_text(encoding="utf-8")
    claims = verify_receipt_with_jwcrypto(site, receipt)
    assert claims["consent"]["partner"]["name"] == PARTNER_NAME
    assert "gender" in claims["consent"]["shared"]["identity"]
    assert "iban" in claims["consent"]["shared"]["bank_account"]
    clear = json.dumps(claims)
    for value in ("FR7699990000010001234567834", "Martin", "1985-03-14", "alice"):
        assert value not in clear
    tab_to(page, "#done-link")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(re.escape(site.partner.url) + r"/callback\?"))
    received = person.received()
    assert received["identity.given_name"] == "Alice"
    assert received["bank_account.iban"] == "FR7699990000010001234567834"
    assert received["identity.gender"]  # optional, kept ticked
    person.check("partner received", "05-partner-received")
    # The receipt stayed in the page: no request carried it, to the partner or anywhere.
    person.watch.assert_no_secret_sent([receipt, receipt.rsplit(".", 1)[1]])

    # The credentials went out once, encrypted: one compact JWE, five base64url parts.
    posts = [r for r in person.watch.requests if r.url.endswith("/credentials")]
    assert len(posts) == 1
    body = posts[0].post_data_json
    assert body is not None and set(body) == {"data_source", "credentials"}
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+", body["credentials"])
    jwks = [r for r in person.watch.requests if r.url.endswith("/.well-known/jwks.json")]
    assert jwks and jwks[0].timing["startTime"] <= posts[0].timing["startTime"]
    person.finish(["alice", "alice-pass"])


def test_checks_answer_questions_without_sending_the_data(person: Person, site: Site) -> None:
    """The demo partner's "verify" offer (docs/checks.md): the person types a name (one letter
    off) and her IBAN at the partner, sees the three questions, then each answer; she declines
    the age, agrees to send her name as the bank has it; the partner gets answers only."""
    page = person.page
    person.open_partner()
    page.fill("#given_name", "Alise")
    page.fill("#family_name", "Martin")
    page.fill("#iban", "FR76 9999 0000 0100 0123 4567 834")
    page.click("#verify")
    page.wait_for_url(re.compile(re.escape(site.broker) + r"/consent/[\w-]+"))
    request = page.locator("#step-request")
    expect(request).to_contain_text("Demo Shop asks you these questions")
    questions = request.locator("ul.checks li")
    expect(questions).to_have_count(3)
    expect(questions.nth(0)).to_have_text("Is your name Alise Martin?")
    expect(questions.nth(2)).to_have_text("Are you at least 18 years old?")
    expect(request.locator(".scopes")).to_have_count(0)  # no data asked for
    person.check("checks request", "20-checks-request")

    person.pick("sandbox-bank")
    person.sign_in("alice", "alice-pass")
    person.wait_for("review")
    answers = page.locator(".review-checks")
    expect(answers).to_contain_text("The answers Demo Shop will receive")
    expect(answers).to_contain_text("Almost: your name here is Alice Martin")
    expect(page.locator("#reveal-name")).not_to_be_checked()
    assert page.locator("#review-fields input[data-check]").count() == 3
    expect(page.locator("#review-fields")).not_to_contain_text("1985")  # no birthdate shown
    person.check("checks review", "21-checks-review")
    page.click("label[for='answer-2']")  # decline "over 18"
    page.click("label[for='reveal-name']")
    person.approve()

    expect(page.locator("#answers")).to_be_visible()
    expect(page.locator("dd[data-check='holder']")).to_have_text(
        "close, not the same (at the bank: Alice Martin)"
    )
    expect(page.locator("dd[data-check='iban']")).to_have_text("matches")
    expect(page.locator("dd[data-check='adult']")).to_have_text("declined")
    expect(page.locator("#data dd")).to_have_count(0)
    person.check("partner received answers", "22-checks-received")
    person.finish(["alice-pass"])


def test_the_receipt_opens_the_rights_page_in_french(
    site: Site, person_factory: Callable[..., Person]
) -> None:
    """A share in French, its receipt downloaded, then the person's rights page: the traces
    of the share, a copy of everything held, and the erasure of the identity data kept."""
    person = person_factory(site, locale="fr-FR")
    page = person.page
    person.open_partner()
    person.start()
    flow_id = page.url.split("?")[0].rsplit("/", 1)[-1]
    person.pick("sandbox-bank")
    person.sign_in("alice", "alice-pass")
    person.wait_for("review")
    # Values as French writes them, not as code ("female", "1985-03-14", "FR").
    review = page.locator("#review-fields")
    expect(review.locator("[data-field=gender] .review-value")).to_have_text("Femme")
    expect(review.locator("[data-field=birthdate] .review-value")).to_have_text("14 mars 1985")
    expect(review.locator("[data-field=country] .review-value")).to_have_text("France")
    page.click("#approve")
    person.shared()
    expect(page.locator("#done-title")).to_have_text("Partagé avec Demo Shop")
    with page.expect_download() as downloading:
        page.click("#receipt-download")
    receipt_file = downloading.value.path()
    page.click("#done-link")
    page.wait_for_url(re.compile(re.escape(site.partner.url) + r"/callback\?"))
    assert person.received()["identity.family_name"] == "Martin"
    kept = identity_copies(site.stack, flow_id)
    assert len(kept) == 1  # identity data kept 72 h after delivery

    page.goto(site.broker + "/rights")
    expect(page.get_by_role("heading", level=1)).to_have_text("Vos données chez Sharelock")
    person.check("rights (fr)")
    page.set_input_files("#receipt-file", receipt_file)
    page.click("#receipt-form button[type=submit]")
    result = page.locator("#result")
    expect(result).to_be_visible()
    assert person.focused() == "result-title"
    traces = page.locator("#traces tbody")
    expect(traces).to_contain_text("Vous avez accepté le partage")
    expect(traces).to_contain_text("Données transmises au service en ligne")
    expect(traces).to_contain_text("Demo Shop")
    expect(traces).to_contain_text("Banque Sandbox")  # the source's name, not its id
    expect(page.locator("#kept")).to_contain_text("doit conserver ces traces jusqu’au")
    person.check("rights, traces (fr)", "15-rights-fr")

    with page.expect_download() as exporting:
        page.click("#export")
    assert re.fullmatch(
        r"sharelock-export-\d{4}-\d{2}-\d{2}\.json", exporting.value.suggested_filename
    )
    document = json.loads(Path(exporting.value.path()).read_text(encoding="utf-8"))
    assert document["identity_data"]["identity"]["family_name"] == "Martin"
    assert "data_delivered" in {t["event"] for t in document["traces"]}

    page.click("#erase")
    erased = page.locator("#erase-result")
    expect(erased).to_contain_text("C’est fait")
    expect(erased).to_contain_text("la loi oblige Sharelock à les conserver")
    expect(erased).to_contain_text("Ce que Demo Shop a reçu est détenu par Demo Shop")
    assert person.focused() == "erase-result"
    assert identity_copies(site.stack, flow_id) == []
    person.check("rights, erased (fr)")

    # Without the receipt: signing in to the bank again proves the account. Login and
    # password are encrypted in the page; the traces show, with the erasure on offer.
    page.select_option("#source", "sandbox-bank")
    page.fill("#login", "alice")
    page.fill("#password", "alice-pass")
    page.click("#proof-form button[type=submit]")
    expect(page.locator("#result-title")).to_be_focused()
    expect(page.locator("#traces tbody")).to_contain_text("Connexion pour prouver votre identité")
    expect(page.locator("#result-summary")).to_contain_text("Banque Sandbox")
    expect(page.locator("#erase")).to_be_visible()
    expect(page.locator("#password")).to_have_value("")

    # bob is asked for a one-time code, encrypted the same way.
    page.fill("#login", "bob")
    page.fill("#password", "bob-pass")
    page.click("#proof-form button[type=submit]")
    expect(page.locator("#otp-form")).to_be_visible()
    expect(page.locator("#otp-intro")).to_contain_text("Banque Sandbox")
    assert person.focused() == "otp-title"
    person.check("rights, one-time code (fr)")
    page.fill("#otp", "123456")
    page.click("#otp-form button[type=submit]")
    expect(page.locator("#otp-form")).to_be_hidden()
    expect(page.locator("#result-title")).to_be_focused()  # the new traces are shown
    expect(page.locator("#traces tbody")).to_contain_text("Connexion pour prouver votre identité")

    rights_posts = [r for r in person.watch.requests if "/api/rights/" in r.url]
    assert {r.url.rsplit("/api/rights/", 1)[-1] for r in rights_posts} == {
        "traces",
        "export",
        "erasure",
        "proofs",
        "proofs/otp",
    }
    jwe = r"[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+"
    for r in rights_posts:
        body = r.post_data_json
        assert body is not None
        if r.url.endswith("/proofs"):
            assert set(body) == {"data_source", "credentials"}
            assert re.fullmatch(jwe, body["credentials"])
        elif r.url.endswith("/proofs/otp"):
            assert set(body) == {"pending", "otp"} and re.fullmatch(jwe, body["otp"])
        else:
            assert set(body) in ({"receipt"}, {"proof"})
    # Login, password and code went out only encrypted, never in a URL or in clear.
    person.finish(["alice", "alice-pass", "bob", "bob-pass", "123456"])


def test_bank_with_one_time_code(person: Person) -> None:
    page = person.page
    person.open_partner()
    person.start()
    person.check("request")
    person.pick("sandbox-bank")
    person.sign_in("bob", "bob-pass")
    person.wait_for("otp")
    assert person.focused() == "otp-title"
    expect(page.locator("#otp-intro")).to_contain_text("Banque Sandbox")
    person.check("otp", "06-otp")

    person.enter_otp("000000")
    person.wait_for("otp")
    expect(page.locator("#otp-error")).to_have_text(
        "This code was not accepted. Check it and try again."
    )
    assert person.focused() == "otp-error"
    expect(page.locator("#otp")).to_have_value("")
    person.check("otp, wrong code")

    person.enter_otp("123456")
    person.wait_for("review")
    expect(page.locator("#review-fields")).to_contain_text("Dubois")
    person.check("review")
    person.approve()
    assert person.received()["identity.family_name"] == "Dubois"
    otp_posts = [r for r in person.watch.requests if r.url.endswith("/otp")]
    assert len(otp_posts) == 2 and all(set(r.post_data_json or {}) == {"otp"} for r in otp_posts)
    person.finish(["bob", "bob-pass", "123456", "000000"])


def test_tax_office_in_french_with_the_language_switch(
    site: Site, person_factory: Callable[..., Person]
) -> None:
    person = person_factory(site, locale="fr-FR")
    page = person.page
    person.open_partner()
    person.start("#share-tax")
    assert page.evaluate("() => document.documentElement.lang") == "fr"
    expect(page.locator("#request-title")).to_have_text("Demo Shop vous demande des données")
    request = page.locator("#step-request")
    expect(request).to_contain_text("Avis d’imposition")
    expect(request).to_contain_text("Revenu fiscal de référence")
    expect(request).to_contain_text("1 heure")
    expect(page.locator("#source-sandbox-tax")).to_be_checked()
    expect(page.locator("#countdown")).to_contain_text("Temps restant")
    person.check("request (fr)", "07-request-fr")

    # The switch reloads the same page in the other language, without a cookie of its own.
    page.click(".languages a[lang=en]")
    expect(page.locator("#request-title")).to_have_text("Demo Shop asks for your data")
    assert page.evaluate("() => document.documentElement.lang") == "en"
    page.click(".languages a[lang=fr]")
    expect(page.locator("#request-title")).to_have_text("Demo Shop vous demande des données")
    assert {
        c["name"] for c in page.context.cookies(site.broker) if not c["name"].startswith("sl_flow_")
    } <= {"demo_shop_state"}  # the partner's, on the same loopback host

    person.pick("sandbox-tax")
    expect(page.locator("#login-label")).to_have_text("Numéro fiscal (13 chiffres)")
    # A malformed tax number is caught in the page; nothing is sent.
    person.sign_in("12345", "tax-pass")
    expect(page.locator("#login-problem")).to_contain_text("Numéro fiscal (13 chiffres)")
    assert person.focused() == "login"
    assert not [r for r in person.watch.requests if r.url.endswith("/credentials")]
    person.check("login (fr), format problem")

    person.sign_in("1234567890123", "tax-pass")
    person.wait_for("review")
    expect(page.locator("#review-title")).to_have_text("Vérifiez ce que Demo Shop va recevoir")
    expect(page.locator("#share-tax_notice-household_shares")).to_be_checked()
    person.check("review (fr)", "08-review-fr")
    person.approve()
    received = person.received()
    assert received["identity.family_name"] == "MOREAU"
    assert received["tax_notice.reference_income"]
    assert "bank_account.iban" not in received
    person.finish(["1234567890123", "tax-pass", "12345"])


def test_refusal_sends_nothing(person: Person) -> None:
    page = person.page
    person.open_partner()
    person.start()
    person.pick("sandbox-bank")
    person.sign_in("alice", "alice-pass")
    person.wait_for("review")
    page.click("#refuse")
    page.wait_for_url(re.compile(re.escape(person.site.partner.url) + r"/callback\?"))
    expect(page.locator("#error")).to_contain_text("access_denied")
    expect(page.locator("#error")).to_contain_text("You chose not to share your data")
    assert not page.locator("#data").count()
    person.check("partner refused", "09-partner-refused")
    person.finish(["alice", "alice-pass"])


def test_an_unticked_optional_field_never_reaches_the_partner(person: Person) -> None:
    page = person.page
    person.open_partner()
    person.start()
    person.pick("sandbox-bank")
    person.sign_in("alice", "alice-pass")
    person.wait_for("review")
    # Switching language reloads the page; it picks the flow up where it was.
    page.click(".languages a[lang=fr]")
    expect(page.locator("#review-title")).to_have_text("Vérifiez ce que Demo Shop va recevoir")
    expect(page.locator("#review-intro")).to_contain_text("Banque Sandbox a fourni ces valeurs")
    page.uncheck("#share-identity-gender")
    page.uncheck("#share-bank_account-bic")
    person.check("review, fields unticked (fr)")
    person.approve()
    received = person.received()
    assert "identity.gender" not in received
    assert "bank_account.bic" not in received
    assert received["identity.family_name"] == "Martin"
    assert received["bank_account.iban"]
    decision = next(r for r in person.watch.requests if r.url.endswith("/decision"))
    assert decision.post_data_json == {"approve": True, "omit": ["gender", "bic"]}
    person.finish(["alice", "alice-pass"])


def test_wrong_password_locked_account_and_timeout_then_success(person: Person) -> None:
    page = person.page
    error = page.locator("#login-error")
    person.open_partner()
    person.start()
    person.pick("sandbox-bank")

    person.sign_in("alice", "wrong-pass")
    person.wait_for("login")
    expect(error).to_have_text(
        "Banque Sandbox did not accept this login and password. Check them and try again, "
        "or choose another service."
    )
    assert person.focused() == "login-error"
    expect(page.locator("#login")).to_have_value("")
    person.check("login, wrong password", "10-wrong-password")

    person.sign_in("locked", "locked-pass")
    person.wait_for("login")
    expect(error).to_contain_text("says this account is locked")
    person.check("login, locked account")

    # The slow user outlasts the connector's timeout. The encrypted request is held in the
    # browser while the progress step is checked, so the check never races the connector.
    held: list[Route] = []
    credentials = "**/api/flows/*/credentials"
    page.route(credentials, lambda route: held.append(route))
    person.sign_in("slow", "slow-pass")
    expect(page.locator("#step-progress")).to_be_visible()
    assert person.focused() == "progress-title"
    expect(page.locator("#status")).to_contain_text("Signing in to Banque Sandbox")
    person.check("progress", "11-progress")
    page.wait_for_function("() => true")  # let the held request reach the handler
    assert len(held) == 1
    held[0].continue_()
    page.unroute(credentials)
    # A timeout is the source's problem, not the person's: they are asked whether the
    # credentials may be kept to fix it. "No" erases them and leads back to signing in.
    person.wait_for("maintenance")
    expect(page.locator("#maintenance-reason")).to_contain_text("did not answer in time")
    page.click("#maintenance-no")
    person.wait_for("login")
    expect(error).to_contain_text("did not answer in time")
    expect(page.locator("#login-info")).to_have_text(
        "Your login and password have been erased: Sharelock keeps nothing."
    )
    answers = [r for r in person.watch.requests if r.url.endswith("/maintenance")]
    assert [r.post_data_json for r in answers] == [{"keep": False}]

    # Back to the choice of source, then a good password.
    page.click("#login-form [data-action=choose-source]")
    expect(page.locator("#step-request")).to_be_visible()
    assert person.focused() == "source-sandbox-bank"
    person.pick("sandbox-bank")
    expect(error).to_be_hidden()
    person.sign_in("alice", "alice-pass")
    person.wait_for("review")
    person.approve()
    assert person.received()["identity.given_name"] == "Alice"
    person.finish(["alice", "wrong-pass", "locked", "locked-pass", "slow-pass", "alice-pass"])


def test_source_down_the_person_lets_the_engineers_keep_the_credentials(
    person: Person, site: Site, sandbox_url: str
) -> None:
    """The bank is down; the page asks, in plain words, whether Sharelock may keep the login
    and password, encrypted, for 120 days at most to fix it; the person says yes. One sealed
    row is kept, and no request ever carried the clear password (the answer is a bare yes)."""
    page = person.page
    login, password = "maintenance-person-7d41", "Maint-Pass-2c9e51a0f3"
    engine = site.stack.engine
    assert engine is not None
    with engine.connect() as connection:
        before = set(connection.scalars(select(MaintenanceCredentialsRow.id)))
    person.open_partner()
    person.start()
    person.pick("sandbox-bank")
    with source_mode(sandbox_url, "sandbox-bank", "down"):
        person.sign_in(login, password)
        person.wait_for("maintenance")
    step = page.locator("#step-maintenance")
    assert person.focused() == "maintenance-title"
    expect(page.locator("#maintenance-title")).to_have_text(
        "May Sharelock keep your login and password to fix this?"
    )
    expect(page.locator("#maintenance-reason")).to_contain_text(
        "Banque Sandbox is not available right now"
    )
    expect(page.locator("#maintenance-intro")).to_contain_text("Banque Sandbox")
    expect(page.locator("#maintenance-question")).to_have_text(
        "Do you allow Sharelock to keep your login and password, encrypted, for 120 days at "
        "most, so that its engineers can fix the connection?"
    )
    expect(step).to_contain_text("erased after 120 days at the latest")
    expect(step).to_contain_text("each opening is recorded")
    expect(step).to_contain_text("Demo Shop never sees them")
    expect(page.locator("#status")).to_contain_text("is not available right now")
    expect(page.locator("#steps [aria-current=step]")).to_contain_text("Sign in")
    expect(page.locator("#login")).to_have_value("")
    expect(page.locator("#password")).to_have_value("")
    # Both answers are plain buttons of the same weight, reachable by keyboard.
    yes, no = page.locator("#maintenance-yes"), page.locator("#maintenance-no")
    expect(yes).to_have_text("Yes, keep them for 120 days at most")
    expect(no).to_have_text("No, erase them now")
    assert yes.get_attribute("class") == no.get_attribute("class")
    person.check("maintenance offer", "15-maintenance-offer")
    tab_to(page, "#maintenance-no")
    tab_to(page, "#maintenance-yes")
    page.keyboard.press("Enter")

    # Back to signing in, told what was kept and until when.
    person.wait_for("login")
    info = page.locator("#login-info")
    expect(info).to_contain_text("Sharelock keeps your login and password, encrypted, until")
    expect(info).to_contain_text("only to fix the connection to Banque Sandbox")
    expect(page.locator("#login-error")).to_contain_text("is not available right now")
    expect(page.locator("#status")).to_contain_text("Thank you.")
    person.check("login after maintenance yes")

    answers = [r for r in person.watch.requests if r.url.endswith("/maintenance")]
    assert [r.post_data_json for r in answers] == [{"keep": True}]
    with engine.connect() as connection:
        new = select(MaintenanceCredentialsRow.__table__).where(
            MaintenanceCredentialsRow.id.not_in(before)
        )
        (row,) = connection.execute(new).mappings().all()
    sealed = bytes(row["sealed"])
    assert login.encode() not in sealed and password.encode() not in sealed
    assert row["expires_at"] - row["created_at"] == timedelta(days=120)

    # The bank back up: the same page goes on with a good password.
    person.sign_in("alice", "alice-pass")
    person.wait_for("review")
    expect(page.locator("#login-info")).to_be_hidden()
    person.finish([login, password, "alice", "alice-pass"])


def test_the_session_cap_expires_the_page(
    short_site: Site, person_factory: Callable[..., Person]
) -> None:
    person = person_factory(short_site)
    page = person.page
    person.open_partner()
    person.start()
    expect(page.locator("#countdown-value")).to_have_text(re.compile(r"^0:0[0-5]$"))
    person.pick("sandbox-bank")
    page.fill("#login", "alice")  # typed, never sent
    started = time.monotonic()
    expired = page.locator("#step-expired")
    expect(expired).to_be_visible(timeout=10_000)
    assert time.monotonic() - started < 8
    assert person.focused() == "expired-title"
    expect(expired).to_contain_text("This request has expired")
    expect(expired).to_contain_text("Nothing was shared with Demo Shop")
    expect(page.locator("#step-login")).to_be_hidden()
    expect(page.locator("#login")).to_have_value("")
    expect(page.locator("#countdown-value")).to_have_text("0:00")
    person.check("expired", "12-expired")

    # The way back to the partner.
    consent_url = page.url
    back = page.locator("#expired-back")
    expect(back).to_have_attribute("href", short_site.partner.url + "/")
    back.click()
    expect(page.locator("#share")).to_be_visible()

    # The broker agrees: the page, loaded again, is a readable error page.
    page.goto(consent_url)
    expect(page.get_by_role("heading", level=1)).to_have_text("This request cannot continue")
    expect(page.locator("[role=alert]")).to_contain_text("expired")
    person.check("expired, loaded again")
    assert not [r for r in person.watch.requests if r.url.endswith("/credentials")]
    # The error page's own 404 status is the one error Chromium reports.
    errors = person.watch.console_errors
    assert all("404" in e for e in errors), errors
    errors.clear()
    person.finish(["alice"])


def test_without_javascript_the_page_says_it_is_needed(
    site: Site, person_factory: Callable[..., Person]
) -> None:
    person = person_factory(site, java_script_enabled=False)
    page = person.page
    page.goto(site.partner.url + "/")
    page.click("#share")
    page.wait_for_url(re.compile(re.escape(site.broker) + r"/consent/[\w-]+"))
    message = page.locator("#needs-js")
    expect(message).to_be_visible()
    expect(message).to_contain_text("This page needs JavaScript")
    expect(message.get_by_role("link")).to_have_attribute("href", site.partner.url + "/")
    expect(page.locator("#app")).to_be_hidden()
    expect(page.locator("#countdown")).to_be_hidden()
    person.watch.assert_clean()


# -- issue 13: a pause before Continue, the phone width, email, no source -----------------


def request_boxes(page: Page) -> dict[str, Any]:
    """Where the request step's parts are drawn (page coordinates, CSS pixels)."""
    boxes = {}
    for name, selector in (
        ("scopes", "#step-request .scopes"),
        ("choice", "#source-form fieldset"),
        ("continue", "#source-form button[type=submit]"),
        ("retention", "#request-retention"),
    ):
        box = page.locator(selector).bounding_box()
        assert box is not None, f"{selector} is not drawn"
        scroll = page.evaluate("() => window.scrollY")
        boxes[name] = {**box, "y": box["y"] + scroll}
    return boxes


def assert_choice_before_retention(page: Page) -> dict[str, Any]:
    boxes = request_boxes(page)
    retention_top = boxes["retention"]["y"]
    for part in ("choice", "continue"):
        bottom = boxes[part]["y"] + boxes[part]["height"]
        assert bottom <= retention_top, f"{part} ends at {bottom}, below the retention facts"
    return boxes


def test_on_a_phone_the_choice_of_source_comes_before_the_retention_facts(
    site: Site, person_factory: Callable[..., Person]
) -> None:
    """At 390 px the choice of the data source and its Continue come before what Sharelock
    keeps; those facts stay on the step, in full, and the note before the choice links to
    them (keyboard included). In English and in French."""
    person = person_factory(site, viewport=PHONE)
    page = person.page
    person.open_partner()
    person.start()
    for lang, heading in (
        ("en", "What Sharelock keeps, and for how long"),
        ("fr", "Ce que Sharelock conserve, et combien de temps"),
    ):
        if lang == "fr":
            page.click(".languages a[lang=fr]")
            expect(page.locator("#request-title")).to_have_text(
                "Demo Shop vous demande des données"
            )
        retention = page.locator("#request-retention")
        expect(page.locator("#retention-heading")).to_have_text(heading)
        expect(retention).to_be_visible()
        expect(retention.locator("li")).to_have_count(6)
        expect(page.locator("#retention-identity")).to_be_visible()  # 72 h, this partner
        boxes = assert_choice_before_retention(page)
        # The choice is no longer screens away: it starts within the second screen.
        assert boxes["choice"]["y"] < 2 * PHONE["height"], boxes["choice"]
        person.check(f"request, phone ({lang})")
        page.evaluate("() => window.scrollTo(0, 0)")
        name = "16-request-first-screen" + ("-fr" if lang == "fr" else "")
        person.screens.take(page, name, widths=("phone",), full_page=False)

    # The link before the choice leads to the facts, and takes the focus there.
    tab_to(page, "a[href='#retention-heading']")
    page.keyboard.press("Enter")
    expect(page.locator("#retention-heading")).to_be_focused()
    expect(page.locator("#retention-heading")).to_be_in_viewport()
    # On a desktop too, the same order.
    page.set_viewport_size(DESKTOP)
    assert_choice_before_retention(page)
    person.pick("sandbox-bank")  # the step still works as before
    person.finish([])


def test_a_minute_on_the_receipt_before_continuing_still_shares(
    clocked_site: ClockedSite, person_factory: Callable[..., Person]
) -> None:
    """The person reads the receipt for 65 s before pressing Continue: the partner still
    receives the data, once (the code is issued when they continue). Time moves on the
    broker's clock, in Redis and in the page; nothing sleeps. This partner does not verify
    identity: the page does not announce a 72 h copy, and none is kept."""
    site = clocked_site
    person = person_factory(site)
    page = person.page
    page.clock.install()
    person.open_partner()
    person.start()
    flow_id = page.url.split("?")[0].rsplit("/", 1)[-1]
    expect(page.locator("#request-retention li")).to_have_count(5)
    expect(page.locator("#retention-identity")).to_have_count(0)
    expect(page.locator("#step-request")).not_to_contain_text("72 hours")
    person.check("request, no identity verification")
    person.pick("sandbox-bank")
    person.sign_in("alice", "alice-pass")
    person.wait_for("review")
    person.check("review, no identity verification")
    page.click("#approve")
    person.shared()
    expect(page.locator("#done-hurry")).to_contain_text("Take your time")

    redis_client = site.stack.raw_redis()
    before = {k: t for k, t in flow_keys(redis_client, flow_id).items() if t > 0}
    assert before, "the approved flow holds nothing in Redis"
    site.pause(65)
    page.clock.fast_forward("01:05")
    after = flow_keys(redis_client, flow_id)
    # The pause really aged what Redis holds (a 60 s code would be gone by now).
    assert after and all(after[k] <= before[k] - 64_000 for k in after if k in before), after
    expect(page.locator("#step-done")).to_be_visible()
    assert page.url.startswith(site.broker)  # nothing navigated on its own
    person.check("shared, after a 65 s pause")

    page.click("#done-link")
    page.wait_for_url(re.compile(re.escape(site.partner.url) + r"/callback\?"))
    received = person.received()
    assert received["identity.family_name"] == "Martin"
    assert received["bank_account.iban"] == "FR7699990000010001234567834"
    assert len(site.stack.audit_rows("data_delivered", flow_id=flow_id)) == 1
    assert identity_copies(site.stack, flow_id) == []  # this partner verifies nothing
    person.check("partner received, after a pause")
    person.finish(["alice", "alice-pass"])


PARTNER_STUB = "<!doctype html><html lang=en><title>Partner</title><h1>Partner</h1></html>"


@pytest.fixture(scope="module")
def stub_partner() -> Iterator[LiveServer]:
    """Another partner's callback, over real HTTP: a page that only says it was reached. The
    test plays that partner's back end (PAR, token, share) with httpx."""

    app = FastAPI()

    @app.get("/{path:path}", response_class=HTMLResponse)
    async def reached(path: str) -> str:
        return PARTNER_STUB

    with serve_app(lambda url: app) as server:
        yield server


def test_email_comes_from_the_telecom_operator(
    site: Site, stub_partner: LiveServer, person_factory: Callable[..., Person]
) -> None:
    """A partner asking for an address and an email: both the telecom operator and the
    energy supplier can provide them; the person picks the operator, sees the email, and the
    partner receives it."""
    stack = site.stack
    callback = f"{stub_partner.url}/newsletter"
    registered = stack.add_partner(
        "Newsletter Shop",
        redirect_uri=callback,
        scopes=["address", "email"],
        purpose="Send you our newsletter (demonstration)",
    )
    share = Share(stack, partner=registered, scope="address email")
    pushed = share.push()
    assert pushed.status_code == 201, pushed.text
    person = person_factory(site)
    page = person.page
    query = urlencode(
        {"client_id": registered.client_id, "request_uri": pushed.json()["request_uri"]}
    )
    page.goto(f"{stack.url}/authorize?{query}")
    expect(page.locator("#step-request")).to_be_visible()
    expect(page.locator("#step-request .scopes")).to_contain_text("Email address")
    choices = page.locator("#source-form input[type=radio]")
    expect(choices).to_have_count(2)
    expect(page.locator("#source-sandbox-telecom")).not_to_be_checked()
    expect(page.locator("#source-sandbox-energy")).not_to_be_checked()
    person.check("request, email")
    person.pick("sandbox-telecom")
    person.sign_in("carol", "carol-pass")
    person.wait_for("review")
    review = page.locator("#review-fields")
    expect(review.locator("[data-field=email] .review-value")).to_have_text(
        "caroline.petit@example.fr"
    )
    person.check("review, email")
    page.click("#approve")
    person.shared()
    person.check("shared, email")
    page.click("#done-link")
    page.wait_for_url(re.compile(re.escape(callback) + r"\?"))
    answer = parse_qs(urlsplit(page.url).query)
    assert answer["state"] == [share.state] and answer["iss"] == [stack.url]
    token = share.exchange(answer["code"][0])
    assert token.status_code == 200, token.text
    shared = share.fetch(token.json()["access_token"])
    assert shared.status_code == 200, shared.text
    assert shared.json()["data"]["email"] == {"email": "caroline.petit@example.fr"}
    person.watch.assert_no_secret_sent(["carol", "carol-pass"])
    person.watch.assert_only_hosts(stack.url, stub_partner.url)
    person.watch.assert_clean()


def test_data_no_source_provides_sends_the_partner_invalid_scope(
    site: Site, stub_partner: LiveServer, person_factory: Callable[..., Person]
) -> None:
    """Bank details and a tax notice come from no single source: the browser goes straight
    back to the partner with `invalid_scope`, its `state` and `iss`, and an explanation; no
    flow starts, no cookie is set."""
    stack = site.stack
    callback = f"{stub_partner.url}/loan"
    registered = stack.add_partner("Loan Shop", redirect_uri=callback, par_exempt=True)
    share = Share(stack, partner=registered, scope="bank_account tax_notice")
    person = person_factory(site)
    page = person.page
    page.goto(f"{stack.url}/authorize?{urlencode(share.authorize_params())}")
    page.wait_for_url(re.compile(re.escape(callback) + r"\?"))
    answer = parse_qs(urlsplit(page.url).query)
    assert answer["error"] == ["invalid_scope"]
    assert "no data source" in answer["error_description"][0]
    assert answer["state"] == [share.state] and answer["iss"] == [stack.url]
    assert "code" not in answer
    assert not [c for c in page.context.cookies(stack.url) if c["name"].startswith("sl_flow_")]
    assert not [r for r in person.watch.requests if "/consent/" in r.url]
    person.watch.assert_only_hosts(stack.url, stub_partner.url)
    person.watch.assert_clean()
