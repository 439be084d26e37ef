"""Documents from data sources through whole shares: the real sandbox serving its PDFs behind
its login, the real connector downloading and checking them, Redis holding them sealed, the
review drawing their pages as PNG, SoftHSM signing the delivery; delivered once, then gone.

And every hostile file of the sandbox (docs/sandbox.md) is refused with its reason, the
person told why, the audit row saying which, and nothing kept."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import ExceededSizeError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from sharelock.documents import DEFAULT_LIMITS, Reason
from sharelock.flow.records import COLLECTED
from sharelock.sandbox.documents import bank_details, bank_statement, energy_bill, tax_notice
from sharelock.sandbox.hostile import HOSTILE, heavy_scan
from sharelock.sandbox.people import ALICE, EMILIE, HELENE
from sharelock.scopes import DOCUMENT_SCOPES
from tests.support.broker import RegisteredPartner, Share, Stack, flow_keys, record_key

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DOCUMENTS = sorted(DOCUMENT_SCOPES)

# (data source, login, password, the scopes asked, what each document must be)
SOURCES: list[tuple[str, str, str, dict[str, bytes]]] = [
    ("sandbox-energy", "erin", "erin-pass", {"proof_of_address": energy_bill(EMILIE)}),
    ("sandbox-tax", "1234567890123", "tax-pass", {"tax_notice_document": tax_notice(HELENE)}),
    (
        "sandbox-bank",
        "alice",
        "alice-pass",
        {
            "bank_details_document": bank_details(ALICE),
            "bank_statement_document": bank_statement(ALICE),
        },
    ),
]
# Each hostile account's file and the reason it must be refused for.
HOSTILE_REASONS = {
    "javascript": Reason.JAVASCRIPT,
    "embedded-file": Reason.EMBEDDED_FILE,
    "form-link": Reason.FORM,
    "truncated": Reason.TRUNCATED,
    "png": Reason.TYPE_MISMATCH,
    "zip": Reason.POLYGLOT,
    "oversized": Reason.TOO_LARGE,
    "pages": Reason.TOO_MANY_PAGES,
    "bomb": Reason.DECOMPRESSION_LIMIT,
    "image": Reason.IMAGE_TOO_LARGE,
}


@pytest.fixture(scope="module")
def documents_partner(stack: Stack) -> RegisteredPartner:
    return stack.add_partner("Docs Shop", scopes=DOCUMENTS, purpose="Check your documents")


@pytest.fixture(scope="module")
def signed_partner(stack: Stack) -> RegisteredPartner:
    return stack.add_partner(
        "Signed Docs", scopes=DOCUMENTS, purpose="Signed documents", delivery_format="jws"
    )


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_MAGIC)
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def redis_dump(stack: Stack) -> bytes:
    """Every value Redis holds, as stored (what a copy of Redis would give)."""
    with stack.raw_redis() as raw:
        return b"".join(raw.dump(key) or b"" for key in raw.scan_iter(count=1000))


def reviewed_pages(share: Share, expected: dict[str, bytes]) -> dict[str, list[str]]:
    """The review: each document as page images (the file itself is not sent), and the
    other fields as collected; returns the image addresses by scope."""
    review = share.review()
    assert review.status_code == 200, review.text
    assert len(review.content) < 16 * 1024  # no file in it
    fields = {(f["scope"], f["field"]): f for f in review.json()["fields"]}
    pages: dict[str, list[str]] = {}
    for scope, content in expected.items():
        document = fields[(scope, "document")]
        assert "value" not in document
        pages[scope] = document["pages"]
        assert fields[(scope, "sha256")]["value"] == hashlib.sha256(content).hexdigest()
        assert fields[(scope, "media_type")]["value"] == "application/pdf"
        assert int(fields[(scope, "pages")]["value"]) == len(document["pages"])
    return pages


def check_image(share: Share, url: str) -> None:
    response = share.browser.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "no-store"
    width, height = png_size(response.content)
    assert width * height <= DEFAULT_LIMITS.max_render_pixels
    assert max(width, height) <= DEFAULT_LIMITS.max_render_side
    assert (width, height) == (909, 1286)  # A4 at 110 dpi


def delivered(share: Share) -> httpx.Response:
    token = share.exchange(share.approve_and_get_code())
    assert token.status_code == 200, token.text
    access = token.json()["access_token"]
    response = share.fetch(access)
    assert response.status_code == 200, response.text
    again = share.fetch(access)
    assert again.status_code == 401 and again.json()["error"] == "invalid_token"
    return response


@pytest.mark.parametrize(
    ("source", "login", "password", "expected"), SOURCES, ids=[s[0] for s in SOURCES]
)
def test_each_document_is_reviewed_as_images_and_delivered_once(
    stack: Stack,
    documents_partner: RegisteredPartner,
    source: str,
    login: str,
    password: str,
    expected: dict[str, bytes],
) -> None:
    share = Share(stack, partner=documents_partner, scope=" ".join(expected))
    share.collect(login, password, source)
    # Sealed in Redis: neither the file nor its base64 is there in clear.
    dump = redis_dump(stack)
    for content in expected.values():
        assert b"%PDF" not in dump
        assert base64.b64encode(content)[8:40] not in dump

    pages = reviewed_pages(share, expected)
    for urls in pages.values():
        for url in urls:
            check_image(share, url)
    first = next(iter(pages.values()))[0]
    # Bound to the person's session cookie, like every consent API route.
    with httpx.Client(base_url=stack.url, timeout=10) as stranger:
        assert stranger.get(first).status_code == 403
    scope = next(iter(expected))
    past = share.browser.get(f"/api/flows/{share.flow_id}/documents/{scope}/9.png")
    assert past.status_code == 400
    other = share.browser.get(f"/api/flows/{share.flow_id}/documents/identity/1.png")
    assert other.status_code == 400

    body = delivered(share).json()
    assert sorted(body["data"]) == sorted(expected)
    for scope, content in expected.items():
        document = body["data"][scope]
        assert base64.b64decode(document["document"], validate=True) == content
        assert document["sha256"] == hashlib.sha256(content).hexdigest()
        assert document["filename"].endswith(".pdf")
    with stack.raw_redis() as raw:
        assert flow_keys(raw, share.flow_id) == {}
    # After the decision, no page is drawn any more.
    assert share.browser.get(first).status_code in (404, 409)


def test_a_signed_delivery_of_a_heavy_document_stays_reasonable(
    stack: Stack, signed_partner: RegisteredPartner
) -> None:
    """A 1.9 MB scan, just under the 2 MiB cap: signed in the HSM, about 3.4 MB of JWT."""
    content = heavy_scan(b"")
    share = Share(stack, partner=signed_partner, scope="proof_of_address")
    share.collect("heavy", "heavy-pass", "sandbox-energy")
    (url,) = reviewed_pages(share, {"proof_of_address": content})["proof_of_address"]
    check_image(share, url)
    response = delivered(share)
    assert response.headers["content-type"].startswith("application/jwt")
    assert len(response.content) < 1.9 * len(content)  # base64 twice: 16/9, plus a little
    keys = KeySet.import_key_set(httpx.get(f"{stack.url}/.well-known/jwks.json").json())
    # joserfc refuses payloads over 128 kB unless told otherwise (docs/partner-guide.md).
    with pytest.raises(ExceededSizeError):
        jwt.decode(response.text, keys, algorithms=["ES256"])
    roomy = JWSRegistry(algorithms=["ES256"])
    roomy.max_payload_length = 4_000_000
    token = jwt.decode(response.text, keys, algorithms=["ES256"], registry=roomy)
    claims: dict[str, Any] = dict(token.claims)
    assert claims["aud"] == signed_partner.client_id
    document = claims["verified_claims"]["claims"]["proof_of_address"]
    assert base64.b64decode(document["document"]) == content
    with stack.raw_redis() as raw:
        assert flow_keys(raw, share.flow_id) == {}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_each_hostile_file_is_refused_with_its_reason_and_nothing_kept(
    stack: Stack, documents_partner: RegisteredPartner, kind: str
) -> None:
    share = Share(stack, partner=documents_partner, scope="proof_of_address")
    assert share.start().status_code == 303
    answer = share.send_credentials(f"hostile-{kind}", "hostile-pass", "sandbox-energy")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "failed"
    assert body["reason"] == "document_refused"
    assert body["detail"] == HOSTILE_REASONS[kind].value
    assert "safety checks" in body["message"]
    assert share.review().status_code == 409
    with stack.raw_redis() as raw:
        assert record_key(COLLECTED, share.flow_id) not in flow_keys(raw, share.flow_id)
    (row,) = stack.audit_rows("collection_failed", flow_id=share.flow_id)
    assert row.outcome == "document_refused"
    assert row.detail_code == HOSTILE_REASONS[kind].value
    # The person may try again (another account, another source): the flow is not stuck.
    assert share.describe().json()["status"] == "awaiting_credentials"
