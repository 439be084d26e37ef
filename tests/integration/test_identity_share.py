"""Identity verification through a whole share (docs/identity-verification.md, "In a share"):
asked at PAR in `authorization_details`, biometric consent on its own step, the document photo
and the live frames encrypted to the broker's key (tests/support/jwe.py, independent of the
broker's code), verified by the real engine (Tesseract, dlib's models) on the broker's identity
thread, reviewed, and delivered as OpenID IA evidence in JSON and in a JWS. Nothing biometric
in Redis in clear, in the logs or in the audit trail; a truncated JPEG is a clear error and
leaves nothing behind. Real HTTP, Redis, SoftHSM, SQLite, sandbox."""

from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from sharelock.config import Retention
from sharelock.identity import DlibFaceEngine
from sharelock.sandbox.people import ALICE
from tests.identity.conftest import Photo, _load, mirrored, portrait
from tests.support import face_photos
from tests.support.broker import (
    RegisteredPartner,
    Share,
    Stack,
    StackFactory,
    flow_keys,
    redis_keys,
)
from tests.support.jwe import build
from tests.support.redis_server import RedisServer
from tests.support.specimens import Holder, jpeg, passport_zone, photographed, render

DETAILS = json.dumps(
    [{"type": "sharelock_identity_verification", "document_types": ["id_card", "passport"]}]
)
# ALICE of the sandbox bank, as her passport's zone spells her.
HOLDER = Holder("MARTIN", "ALICE", date.fromisoformat(ALICE.birthdate))
IDENTITY_KINDS = ("identity-held", "identity-document", "identity-frames")


@pytest.fixture(scope="module")
def images() -> dict[str, Any]:
    """A passport of Alice with a real photograph (face_recognition's test images), three live
    frames of the same person turning the head, and the document cut short (truncated JPEG)."""
    directory = face_photos.ensure()
    photos: dict[str, Photo] = {
        name: _load(directory / f"{name}.jpg") for name in ("obama", "obama2", "obama3")
    }
    (face,) = DlibFaceEngine().faces(photos["obama3"])
    page = render(passport_zone(HOLDER, "12AB34567", date(2032, 1, 1)),
                  portrait(photos["obama3"], face.box), "PASSPORT")  # fmt: skip
    document = jpeg(photographed(page, angle=2.0), 85)
    frames = [jpeg(p) for p in (photos["obama"], photos["obama2"], mirrored(photos["obama2"]))]
    return {"document": document, "frames": frames, "truncated": document[: len(document) // 2]}


def sealed(share: Share, image: bytes) -> str:
    jwk = share.jwk()
    return build(jwk, image, alg=jwk["alg"]).compact()


def started(stack: Stack, partner: RegisteredPartner | None = None) -> Share:
    share = Share(stack, scope="", partner=partner)
    response = share.start(scope=None, authorization_details=DETAILS)
    assert response.status_code == 303, response.text
    share.collect_started()
    return share


def post(share: Share, step: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return share.browser.post(f"/api/flows/{share.flow_id}/identity/{step}", json=body or {})


def capture(share: Share, document: bytes, frames: list[bytes]) -> None:
    sent = post(share, "document", {"image": sealed(share, document)})
    assert sent.status_code == 200, sent.text
    sent = post(share, "frames", {"frames": [sealed(share, frame) for frame in frames]})
    assert sent.status_code == 200 and sent.json()["frames"] == len(frames), sent.text


def identity_keys(stack: Stack, share: Share) -> list[str]:
    keys = flow_keys(stack.raw_redis(), share.flow_id)
    return [key for key in keys if any(f":{kind}:" in key for kind in IDENTITY_KINDS)]


def delivered(share: Share) -> httpx.Response:
    token = share.exchange(share.approve_and_get_code())
    assert token.status_code == 200, token.text
    response = share.fetch(token.json()["access_token"])
    assert response.status_code == 200, response.text
    return response


def test_a_share_verifies_identity_and_delivers_the_evidence(
    stack: Stack, images: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    share = started(stack)
    described = share.describe().json()
    assert described["identity_verification"]["document_types"] == ["passport", "id_card"]
    review = share.review().json()
    assert review["fields"] == []  # identity collected for the comparison only, never shown
    assert review["identity_verification"]["status"] == "awaiting_consent"
    assert [k for k in identity_keys(stack, share) if ":identity-held:" in k]

    # No image before the biometric consent, and no decision before the verification.
    refused = post(share, "document", {"image": sealed(share, images["document"])})
    assert refused.status_code == 409 and "consent" in refused.text
    assert share.decide(True).status_code == 409

    agreed = post(share, "consent", {"agree": True})
    assert agreed.status_code == 200 and agreed.json()["status"] == "awaiting_capture"
    capture(share, images["document"], images["frames"])
    stored = stack.raw_redis()
    raw = b"".join(stored.get(key) or b"" for key in identity_keys(stack, share))
    for image in (images["document"], *images["frames"]):
        assert image[200:264] not in raw  # sealed: no stretch of any image in clear
    assert len(identity_keys(stack, share)) == 3

    verified = post(share, "verify")
    assert verified.status_code == 200, verified.text
    outcome = verified.json()
    assert outcome["status"] == "verified", outcome
    assert outcome["document_type"] == "passport" and outcome["issuing_country"] == "FRA"
    assert {c["check"] for c in outcome["checks"] if c["passed"]} == {
        "mrz_check_digits", "document_expiry", "name_match", "birthdate_match", "face_match",
        "liveness_head_turn",
    }  # fmt: skip
    assert identity_keys(stack, share) == []  # images and the identity erased at once
    assert share.review().json()["identity_verification"]["status"] == "verified"

    response = delivered(share)
    body = response.json()
    assert body["data"] == {} and "identity" not in body["scopes"]
    evidence = body["identity_verification"]
    assert evidence["type"] == "document"
    assert evidence["document_details"] == {"type": "passport", "issuer": {"country_code": "FRA"}}
    assert all(check["passed"] for check in evidence["check_details"])
    for value in ("MARTIN", "Martin", "Alice", ALICE.birthdate, "12AB34567", "/9j/"):
        assert value not in response.text  # evidence only: no value read, no image
    assert not [k for k in redis_keys(stack.raw_redis()) if share.flow_id in k]
    audit = json.dumps([row.to_json() for row in stack.audit_rows()], default=str)
    for marker in ("face_match", "liveness", "check_details", "12AB34567"):
        assert marker not in audit
    steps = [
        (row.event, row.outcome)
        for row in stack.audit_rows(flow_id=share.flow_id)
        if row.event.startswith("identity_")
    ]
    assert steps == [("identity_consent", "given"), ("identity_verified", "verified")]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "12AB34567" not in logged and "MARTIN" not in logged and "score" not in logged


def test_a_truncated_image_is_refused_and_nothing_is_kept_then_a_jws_carries_the_evidence(
    stack: Stack, images: dict[str, Any]
) -> None:
    partner = stack.add_partner("Signed IDV", purpose="identity", delivery_format="jws")
    share = started(stack, partner)
    assert post(share, "consent", {"agree": True}).status_code == 200
    capture(share, images["truncated"], images["frames"])
    refused = post(share, "verify")
    assert refused.status_code == 400
    assert refused.json()["error_description"] == (
        "identity verification: document: image rejected (undecodable)"
    )
    kept = identity_keys(stack, share)
    assert kept and all(":identity-held:" in key for key in kept)  # no image kept
    assert share.review().json()["identity_verification"]["status"] == "awaiting_capture"
    assert post(share, "verify").status_code == 409  # nothing captured any more

    capture(share, images["document"], images["frames"])  # the person tries again
    assert post(share, "verify").json()["status"] == "verified"
    response = delivered(share)
    keys = KeySet.import_key_set(httpx.get(f"{stack.url}/.well-known/jwks.json").json())
    claims = jwt.decode(response.text, keys, algorithms=["ES256"]).claims
    record, document = claims["verified_claims"]["verification"]["evidence"]
    assert record["type"] == "electronic_record"
    assert document["type"] == "document"
    assert document["document_details"]["type"] == "passport"
    assert {c["check"] for c in document["check_details"]} >= {"face_match", "liveness_head_turn"}


def test_a_declined_biometric_consent_is_sent_as_declined(stack: Stack) -> None:
    share = started(stack)
    declined = post(share, "consent", {"agree": False})
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert identity_keys(stack, share) == []
    assert post(share, "consent", {"agree": True}).status_code == 409  # answered once
    assert post(share, "verify").status_code == 409
    body = delivered(share).json()
    assert body["identity_verification"] == {"declined": True}


def test_a_share_without_identity_verification_has_no_such_step(stack: Stack) -> None:
    share = Share(stack, scope="identity")
    share.collect()
    assert share.review().json()["identity_verification"] == {"asked": False}
    refused = post(share, "consent", {"agree": True})
    assert refused.status_code == 400
    assert refused.json()["error_description"] == "this share asks no identity verification"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"document_types": ["driving_licence"]}, "document_types may hold"),
        ({"document_types": []}, "non-empty array"),
        ({"document_types": ["passport"], "images": True}, "unknown field"),
    ],
)
def test_a_malformed_request_is_refused_at_par(
    stack: Stack, entry: dict[str, Any], problem: str
) -> None:
    details = json.dumps([{"type": "sharelock_identity_verification", **entry}])
    response = Share(stack, scope="").push(scope=None, authorization_details=details)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_authorization_details"
    assert problem in response.json()["error_description"]


def test_a_partner_without_the_identity_scope_cannot_ask_it(stack: Stack) -> None:
    partner = stack.add_partner("No identity", scopes=["address"])
    response = Share(stack, scope="", partner=partner).push(
        scope=None, authorization_details=DETAILS
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_authorization_details"


def test_captured_images_expire_with_the_session_at_the_latest(
    make_stack: StackFactory, redis_server: RedisServer, sandbox_url: str, images: dict[str, Any]
) -> None:
    """The images and the identity they are compared with live no longer than the session
    (and never past 72 h): with an 8-second session they carry a TTL within it, and Redis
    erases them when it ends, verification or not."""
    short = Retention(
        session=timedelta(seconds=8),
        pushed_request=timedelta(seconds=8),
        authorization_code=timedelta(seconds=1),
        access_token=timedelta(seconds=1),
    )
    with make_stack(redis_url=redis_server.url, sandbox_url=sandbox_url, retention=short) as stack:
        share = started(stack)
        assert post(share, "consent", {"agree": True}).status_code == 200
        capture(share, images["document"], images["frames"][:2])
        keys = identity_keys(stack, share)
        assert len(keys) == 3
        with stack.raw_redis() as raw:
            lives = [raw.pttl(key) for key in keys]
            assert all(0 < life <= 8000 for life in lives), lives
            deadline = time.monotonic() + 15
            while identity_keys(stack, share) and time.monotonic() < deadline:
                time.sleep(0.2)
        assert identity_keys(stack, share) == []
