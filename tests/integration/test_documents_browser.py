"""Documents on the consent screen, in Debian's headless Chromium: the review shows each
document's pages as images drawn by the broker (no PDF plug-in, nothing but same-origin
images under the page's Content-Security-Policy), axe-core finds nothing serious, and the
partner receives the very files the bank issued. Fixtures and checks are those of
`test_consent_browser.py`."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from sharelock.sandbox.documents import bank_details, bank_statement
from sharelock.sandbox.people import ALICE
from sharelock.web.consent_page import PAGE_CSP
from tests.integration.test_consent_browser import (  # noqa: F401 (fixtures)
    Person,
    Site,
    axe_report,
    browser,
    person_factory,
    screens,
    site,
    stub_partner,
)
from tests.support.broker import Share
from tests.support.server import LiveServer

pytestmark = pytest.mark.browser

SCOPES = ["identity", "bank_details_document", "bank_statement_document"]


def test_the_review_shows_each_documents_pages_and_the_partner_gets_the_files(
    site: Site,  # noqa: F811
    stub_partner: LiveServer,  # noqa: F811
    person_factory: Callable[..., Person],  # noqa: F811
) -> None:
    stack = site.stack
    callback = f"{stub_partner.url}/rental"
    registered = stack.add_partner(
        "Rental Agency",
        redirect_uri=callback,
        scopes=SCOPES,
        purpose="Check your rental application (demonstration)",
    )
    share = Share(stack, partner=registered, scope=" ".join(SCOPES))
    pushed = share.push()
    assert pushed.status_code == 201, pushed.text
    person = person_factory(site)
    page = person.page
    query = urlencode(
        {"client_id": registered.client_id, "request_uri": pushed.json()["request_uri"]}
    )
    page.goto(f"{stack.url}/authorize?{query}")
    request = page.locator("#step-request")
    expect(request).to_be_visible()
    expect(request.locator(".scopes")).to_contain_text("Bank details (RIB)")
    expect(request.locator(".scopes")).to_contain_text("Bank statement")
    person.pick("sandbox-bank")
    person.sign_in("alice", "alice-pass")
    person.wait_for("review")

    # One image per page: the RIB's one, the statement's two, each drawn and described.
    images = page.locator("#review-fields .document-page img")
    expect(images).to_have_count(3)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.document-page img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    expect(images.nth(0)).to_have_attribute("alt", "Bank details (RIB), page 1 of 1")
    expect(images.nth(2)).to_have_attribute("alt", "Bank statement (latest), page 2 of 2")
    review = page.locator("#review-fields")
    expect(review.locator("[data-field=filename] .review-value").first).to_have_text("rib.pdf")
    expect(review).to_contain_text("SHA-256 fingerprint")
    expect(review).to_contain_text("Martin")
    person.check("review, documents", "17-review-documents")
    assert page.locator("embed, object, iframe").count() == 0  # no plug-in, no frame

    flow_id = urlsplit(page.url).path.rsplit("/", 1)[-1]
    drawn = person.watch.broker_answers(stack.url, f"/api/flows/{flow_id}/documents/")
    assert len(drawn) == 3
    for response in drawn:
        assert response.status == 200
        assert response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"] == "no-store"
        assert response.body().startswith(b"\x89PNG\r\n\x1a\n")
    consent = person.watch.broker_answers(stack.url, "/consent/")
    assert consent and consent[0].headers["content-security-policy"] == PAGE_CSP

    page.click("#approve")
    person.shared()
    page.click("#done-link")
    page.wait_for_url(re.compile(re.escape(callback) + r"\?"))
    answer = parse_qs(urlsplit(page.url).query)
    token = share.exchange(answer["code"][0])
    assert token.status_code == 200, token.text
    shared = share.fetch(token.json()["access_token"])
    assert shared.status_code == 200, shared.text
    data = shared.json()["data"]
    assert data["identity"]["family_name"] == "Martin"
    for scope, content in (
        ("bank_details_document", bank_details(ALICE)),
        ("bank_statement_document", bank_statement(ALICE)),
    ):
        assert base64.b64decode(data[scope]["document"]) == content
    person.watch.assert_no_secret_sent(["alice", "alice-pass"])
    person.watch.assert_only_hosts(stack.url, stub_partner.url)
    person.watch.assert_clean()
