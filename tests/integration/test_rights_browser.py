"""`/rights` as a person uses it, in Debian's headless Chromium: every right of seed 003
chapter 10 in one place, after the same proof as every right (a fresh sign-in at the bank).

A whole broker runs over real HTTP (SoftHSM, Redis, SQLite, the sandbox). Two shares are made
first through the API as a partner makes them: one delivered to Partner A (whose role and
data-protection contact the page shows), one approved for Partner B and not yet delivered.
Then, in the browser: access (the traces), portability (the download, and forwarding to
another organisation), erasure (what the broker holds, and what Partner A received),
rectification, objection, restriction, withdrawal of consent (which cancels Partner B's share
at once); in English at desktop width, then in French, then at phone width. Every step runs
axe-core, and no request carries the clear password.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.integration.test_rights import approve, share_and_deliver
from tests.support.broker import Share, Stack, flow_keys
from tests.support.browser import (
    BLOCKING,
    PHONE,
    STEP_TIMEOUT_MS,
    Screens,
    Watch,
    axe_violations,
    chromium,
)

pytestmark = pytest.mark.browser

DPO_A = "dpo@partner-a.example"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def shares(stack: Stack) -> dict[str, Share]:
    """Partner A received alice's data; Partner B's share is approved, not delivered."""
    stack.registry.set_dpo_contact(stack.partner.client_id, DPO_A)
    delivered, _, _ = share_and_deliver(stack)
    pending = Share(stack, partner=stack.other_partner)
    pending.collect()
    approve(pending)
    return {"delivered": delivered, "pending": pending}


class Person:
    def __init__(self, browser: Browser, stack: Stack, locale: str) -> None:
        self.context = browser.new_context(locale=locale, accept_downloads=True)
        self.context.set_default_timeout(STEP_TIMEOUT_MS)
        self.watch = Watch()
        self.watch.attach(self.context)
        self.page: Page = self.context.new_page()
        self.stack = stack

    def check(self, step: str) -> None:
        problems = axe_violations(self.page, BLOCKING)
        assert not problems, f"{step}: {problems}"
        self.watch.assert_clean()

    def sign_in(self, lang: str) -> None:
        page = self.page
        page.goto(f"{self.stack.url}/rights?lang={lang}")
        page.select_option("#source", "sandbox-bank")
        page.fill("#login", "alice")
        page.fill("#password", "alice-pass")
        page.click("#proof-form button[type=submit]")
        expect(page.locator("#result-title")).to_be_focused()
        expect(page.locator("#all-rights")).to_be_visible()

    def ask(self, partner: str, kind: str, **extra: str) -> str:
        page = self.page
        page.select_option("#ask-partner", label=partner)
        page.check(f"#kind-{kind}")
        if "scope" in extra:
            page.check(f"#scope-{extra['scope']}")
        if "recipient" in extra:
            page.fill("#ask-recipient", extra["recipient"])
        rows = page.locator("#requests tbody tr").count()
        page.click("#ask-submit")
        result = page.locator("#ask-result")
        expect(result).to_be_visible()
        expect(result).to_be_focused()
        text = result.inner_text()
        self.check(f"{kind} with {partner}")
        # A forwarded request appears in the table at once.
        if "R-" in text:
            expect(page.locator("#requests tbody tr")).to_have_count(rows + 1)
        return text

    def close(self) -> None:
        self.watch.assert_no_secret_sent(["alice-pass"])
        self.watch.assert_only_hosts(self.stack.url)
        self.context.close()


def test_every_right_in_english_then_french_then_on_a_phone(
    browser: Browser, stack: Stack, shares: dict[str, Share], tmp_path: Path
) -> None:
    person = Person(browser, stack, "en-GB")
    page = person.page
    person.sign_in("en")
    # Access: the traces, and who answers for the data with their contacts.
    expect(page.locator("#traces tbody")).to_contain_text("Data sent to the online service")
    who = page.locator("#who")
    expect(who).to_contain_text("Data-protection officer: dpo@sharelock.example")
    expect(who).to_contain_text("Partner A decides what it does with the data it received")
    expect(who).to_contain_text(f"Data-protection officer of Partner A: {DPO_A}")
    expect(who).to_contain_text("Partner B has not given a data-protection contact")
    person.check("rights, signed in (en)")
    Screens().take(page, "20-rights")

    # Portability, the copy: one JSON document.
    with page.expect_download() as exporting:
        page.click("#export")
    document = json.loads(Path(exporting.value.path()).read_text(encoding="utf-8"))
    assert document["format"] == "sharelock-rights-export/1"
    # Erasure of what Sharelock holds.
    page.click("#erase")
    expect(page.locator("#erase-result")).to_contain_text("Done")
    person.check("rights, erased (en)")

    # Withdrawal of consent for Partner B's share, not yet delivered: cancelled at once.
    text = person.ask("Partner B", "withdrawal")
    assert "is cancelled; Partner B will receive nothing" in text, text
    releases = [
        k for k in flow_keys(stack.raw_redis(), shares["pending"].flow_id) if ":release:" in k
    ]
    assert not releases
    # What only Partner A can do: forwarded, with a reference and a deadline.
    for kind, extra in (
        ("rectification", {"scope": "identity"}),
        ("erasure", {}),
        ("objection", {}),
        ("portability", {"recipient": "Other Bank SA, dpo@other-bank.example"}),
    ):
        text = person.ask("Partner A", kind, **extra)
        assert "Sent to Partner A under the reference R-" in text, (kind, text)
        assert "must answer by" in text
    table = page.locator("#requests tbody")
    expect(table).to_contain_text("Rectification")
    expect(table).to_contain_text("Portability to another organisation")
    expect(table).to_contain_text("Awaiting an answer")
    # A request without its details gets a readable error, and nothing is sent.
    posts = len(person.watch.broker_answers(stack.url, "/api/rights/requests"))
    page.check("#kind-portability")
    page.fill("#ask-recipient", "")
    page.click("#ask-submit")
    expect(page.locator("#recipient-problem")).to_have_text(
        "Name the organisation that should receive your data."
    )
    expect(page.locator("#ask-recipient")).to_be_focused()
    person.check("rights, portability without recipient (en)")
    assert len(person.watch.broker_answers(stack.url, "/api/rights/requests")) == posts
    person.close()

    # In French: restriction, and the requests made in English, worded in French.
    person = Person(browser, stack, "fr-FR")
    page = person.page
    person.sign_in("fr")
    expect(page.locator("#who")).to_contain_text("il en est le responsable du traitement")
    text = person.ask("Partner A", "restriction")
    assert "Transmis à Partner A sous la référence R-" in text, text
    assert "doit répondre au plus tard le" in text
    expect(page.locator("#requests tbody")).to_contain_text("En attente de réponse")
    expect(page.locator("#requests tbody")).to_contain_text("Limitation du traitement")
    Screens().take(page, "21-rights-requests-fr")

    # At phone width: the same page, nothing wider than the screen, still accessible.
    page.set_viewport_size(PHONE)
    person.check("rights at phone width (fr)")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    text = person.ask("Partner A", "objection")
    assert "R-" in text
    person.close()
