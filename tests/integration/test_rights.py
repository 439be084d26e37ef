"""Consent receipts and the person's rights without an account, over the real stack: uvicorn
on loopback, SoftHSM, Redis, SQLite, the sandbox data sources.

A receipt comes back with every approval, verifies with an independent JOSE library (joserfc)
against the key the broker publishes, and names fields, never values. A login alone identifies
nobody: without a receipt, the person proves control of their data-source account by signing
in to it again (credentials encrypted to the broker's key, opened in the HSM, the connector's
login must succeed) and gets a short-lived proof. With either, a person sees exactly their own
traces, erases the identity data still kept and downloads everything held. Every request
leaves its audit row first, and none is answered when that row cannot be written.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import text

from sharelock.audit import AuditRecord
from sharelock.audit.jws import b64url
from sharelock.audit.receipts import RECEIPT_TYP, issue_receipt
from sharelock.auditors import AuditorRegistry
from sharelock.config import Settings
from sharelock.envelope.sealing import pick_encryption_key, seal_for
from sharelock.flow import flow_ref
from sharelock.flow.records import IDENTITY
from sharelock.keys import KeyLayer
from sharelock.oauth.tokens import digest
from sharelock.rights import PROOF_LIFETIME
from sharelock.web.consent_page import PAGE_CSP
from tests.support.broker import Share, Stack, broker_stack, record_key, redis_keys, sqlite_url
from tests.support.redis_server import RedisServer

ALICE_VALUES = (
    "FR7699990000010001234567834",
    "FR76 9999",
    "Martin",
    "1985-03-14",
    "Lyon",
    "rue de la R",
    "69002",
    "SBOXFRPP",
    "alice-pass",
)
# Used only as a login and password on the rights API: they must reach no log line, no audit
# row and no Redis value in clear.
PLANTED_LOGIN = "Planted.Rights-9Wq@Example.org"
PLANTED_PASSWORD = "Planted-Pass-7Zk!"
AUDITOR_EVENTS = {"auditor_query", "auditor_added", "auditor_revoked"}
THIRTEEN_MONTHS = 396 * 86400


# -- helpers ------------------------------------------------------------------------------


def published_keys(stack: Stack) -> KeySet:
    """The broker's JWKS as any client gets it, over HTTP."""
    jwks = httpx.get(stack.url + "/.well-known/jwks.json", timeout=10).json()
    assert [k for k in jwks["keys"] if k["use"] == "sig"], jwks
    return KeySet.import_key_set(jwks)


def joserfc_claims(stack: Stack, receipt: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a receipt verified by joserfc against the published key set."""
    verified = jws.deserialize_compact(receipt, published_keys(stack), algorithms=["ES256"])
    claims: dict[str, Any] = json.loads(verified.payload)
    return dict(verified.protected), claims


def decoded(receipt: str) -> str:
    head, payload, _ = receipt.split(".")
    return "".join(
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8")
        for part in (head, payload)
    )


def approve(share: Share, omit: list[str] | None = None) -> tuple[str, str]:
    """Approve the collected share: (its receipt, the code in `redirect_to`)."""
    decision = share.decide(True, omit)
    assert decision.status_code == 200, decision.text
    body = decision.json()
    return body["receipt"], share.continue_to_partner(body["redirect_to"])


def approved(stack: Stack, **collect: str) -> tuple[Share, str]:
    """A share collected and approved: (the share, its receipt); the code left unused."""
    share = Share(stack)
    share.collect(**collect)
    return share, approve(share)[0]


def share_and_deliver(stack: Stack, **collect: str) -> tuple[Share, str, dict[str, Any]]:
    """A share approved and fetched: (the share, its receipt, what the partner received)."""
    share = Share(stack)
    share.collect(**collect)
    receipt, code = approve(share)
    token = share.exchange(code)
    assert token.status_code == 200, token.text
    fetched = share.fetch(token.json()["access_token"])
    assert fetched.status_code == 200, fetched.text
    received: dict[str, Any] = fetched.json()
    return share, receipt, received


def rights(stack: Stack, what: str, body: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{stack.url}/api/rights/{what}", json=body, timeout=30)


def sealed(stack: Stack, payload: dict[str, str]) -> str:
    """A compact JWE of `payload` for the broker's published key, as the page makes it."""
    jwks = httpx.get(stack.url + "/.well-known/jwks.json", timeout=10).json()
    return seal_for(dict(pick_encryption_key(jwks)), payload)


def prove(
    stack: Stack, login: str, password: str, data_source: str = "sandbox-bank"
) -> httpx.Response:
    credentials = sealed(stack, {"login": login, "password": password})
    return rights(stack, "proofs", {"data_source": data_source, "credentials": credentials})


def proof_of(stack: Stack, login: str = "alice", password: str = "alice-pass", **kw: str) -> str:
    """A proof handle for a sandbox login that signs in straight away."""
    answer = prove(stack, login, password, **kw)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "verified", body
    handle: str = body["proof"]
    return handle


def proof_key(handle: str) -> str:
    return f"sl:rights-proof:{digest(handle)}"


def pending_key(handle: str) -> str:
    return f"sl:rights-pending:{digest(handle)}"


def rights_rows(stack: Stack) -> list[AuditRecord]:
    return [r for r in stack.audit_rows() if r.event.startswith("rights_")]


def identity_key(share: Share) -> str:
    return record_key(IDENTITY, flow_ref(share.flow_id))


# -- receipts -----------------------------------------------------------------------------


def test_approval_returns_a_signed_receipt_that_names_fields_never_values(stack: Stack) -> None:
    share = Share(stack)
    share.collect()
    review = share.review().json()["fields"]
    assert {"gender", "iban", "family_name"} <= {f["field"] for f in review}
    decision = share.decide(True, ["gender"])
    assert decision.status_code == 200, decision.text
    assert set(decision.json()) == {"redirect_to", "receipt"}
    receipt = decision.json()["receipt"]

    header, claims = joserfc_claims(stack, receipt)
    assert header["alg"] == "ES256" and header["typ"] == RECEIPT_TYP
    assert claims["iss"] == stack.url
    consent = claims["consent"]
    assert consent["partner"] == {"client_id": stack.partner.client_id, "name": "Partner A"}
    assert consent["purpose"] == "Partner A tests"
    assert consent["data_source"] == "sandbox-bank"
    expected: dict[str, list[str]] = {}
    for item in review:
        if item["field"] != "gender":
            expected.setdefault(item["scope"], []).append(item["field"])
    assert consent["shared"] == {scope: sorted(names) for scope, names in expected.items()}
    assert abs(claims["iat"] - datetime.now(UTC).timestamp()) < 60
    assert claims["exp"] - claims["iat"] == THIRTEEN_MONTHS
    assert re.fullmatch(r"[\w-]{20,}", claims["jti"])
    credentials_row = stack.audit_rows("credentials_received", flow_id=share.flow_id)[0]
    assert claims["trace"] == {
        "flow_ref": flow_ref(share.flow_id),
        "login_hash": credentials_row.login_hash,
    }

    # Field names, never values: not one of the values reviewed, nor the login or password.
    clear = decoded(receipt)
    planted = [str(f["value"]) for f in review if len(str(f["value"])) >= 4]
    assert "FR7699990000010001234567834" in planted and "Martin" in planted
    for value in [*planted, *ALICE_VALUES]:
        assert value.lower() not in clear.lower(), value
    assert not re.search(r"(?<![a-z_])alice(?![a-z_])", clear.lower())

    # The share goes on as before: Continue gives the code, which still delivers.
    token = share.exchange(share.continue_to_partner(decision.json()["redirect_to"]))
    assert token.status_code == 200 and share.fetch(token.json()["access_token"]).status_code == 200


def test_a_refusal_gets_no_receipt(stack: Stack) -> None:
    share = Share(stack)
    share.collect()
    refused = share.decide(False)
    assert refused.status_code == 200 and set(refused.json()) == {"redirect_to"}


def test_receipts_that_are_not_the_brokers_are_refused(stack: Stack, key_layer: KeyLayer) -> None:
    _, receipt = approved(stack)
    head, payload, signature = receipt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["consent"]["shared"]["bank_account"] = ["account_holder", "bic", "iban", "extra"]
    tampered = ".".join((head, b64url(json.dumps(claims).encode()), signature))
    with pytest.raises(BadSignatureError):
        joserfc_claims(stack, tampered)

    # Signed by another P-256 key that claims the broker's kid.
    kid = next(k for k in published_keys(stack).keys if k.get("use") == "sig").kid
    impostor = ECKey.import_key(ec.generate_private_key(ec.SECP256R1()))
    forged = jws.serialize_compact(
        {"alg": "ES256", "kid": kid, "typ": RECEIPT_TYP}, json.dumps(claims), impostor
    )

    def issued(**overrides: Any) -> str:
        fields: dict[str, Any] = {
            "issuer": stack.url,
            "client_id": stack.partner.client_id,
            "partner_name": "Partner A",
            "purpose": "tests",
            "data_source": "sandbox-bank",
            "shared": {"identity": ["family_name"]},
            "flow_ref": "0123456789abcdef0123456789abcdef",
            "valid_for": timedelta(days=396),
            **overrides,
        }
        return issue_receipt(key_layer, **fields)

    old = datetime.now(UTC) - timedelta(days=400)
    refused = {
        "tampered": tampered,
        "forged": forged,
        "expired": issued(at=old),
        "expired, no exp": issued(at=old, valid_for=None),
        "exp beyond the audit retention": issued(at=old, valid_for=timedelta(days=800)),
        "from the future": issued(at=datetime.now(UTC) + timedelta(hours=1)),
        "another issuer": issued(issuer="https://other-broker.example"),
        "not a JWS": "a.b.c",
        "a JWE": "a.b.c.d.e",
    }
    before = len(rights_rows(stack))
    for label, bad in refused.items():
        for what in ("traces", "erasure", "export"):
            answer = rights(stack, what, {"receipt": bad})
            assert answer.status_code == 400, (label, what, answer.text)
            assert answer.json()["error"] == "invalid_receipt", (label, what)
    assert len(rights_rows(stack)) == before  # a refused receipt discloses and records nothing

    # The same helper, unchanged, makes a receipt the API accepts: the refusals above are
    # each about the one thing changed.
    accepted = rights(stack, "traces", {"receipt": issued()})
    assert accepted.status_code == 200, accepted.text
    assert rights(stack, "traces", {"receipt": receipt}).status_code == 200


# -- access: exactly this person's rows -------------------------------------------------------


@pytest.fixture
def own_stack(
    settings: Settings,
    key_layer: KeyLayer,
    redis_server: RedisServer,
    sandbox_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """A broker with a trail of its own, so the test knows every row in it."""
    with broker_stack(
        settings,
        key_layer,
        redis_url=redis_server.url,
        sandbox_url=sandbox_url,
        database_url=sqlite_url(tmp_path_factory.mktemp("rights-db")),
    ) as running:
        yield running


def test_the_traces_listed_are_exactly_this_persons_rows(own_stack: Stack) -> None:
    stack = own_stack
    first, receipt, _ = share_and_deliver(stack)
    second = Share(stack)  # alice again, same bank login: a wrong password, then a refusal
    assert second.start().status_code == 303
    assert second.send_credentials("alice", "wrong-pass").json()["status"] == "failed"
    second.collect_started()
    assert second.decide(False).status_code == 200
    bob = Share(stack)  # other people, and alice's name at another source
    assert bob.start().status_code == 303
    assert bob.send_credentials("bob", "bob-pass").json()["status"] == "otp_required"
    assert bob.send_otp("123456").json()["status"] == "collected"
    carol = Share(stack, scope="identity phone")
    carol.collect(login="carol", password="carol-pass", data_source="sandbox-telecom")
    elsewhere = Share(stack, scope="identity phone")
    assert elsewhere.start().status_code == 303
    assert elsewhere.send_credentials("alice", "x", "sandbox-telecom").json()["status"] == "failed"
    # An auditor looks alice up: that question is about her login, and stays hidden from her.
    assert stack.engine is not None
    _, token = AuditorRegistry(stack.engine).add("Inquiry")
    asked = httpx.post(
        stack.url + "/audit/hash",
        json={"data_source": "sandbox-bank", "login": "alice"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert asked.status_code == 200
    alice = asked.json()["login_hash"]

    answer = rights(stack, "traces", {"receipt": receipt})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    listed = [t["id"] for t in body["traces"]]

    rows = stack.audit_rows()
    hers = {flow_ref(first.flow_id), flow_ref(second.flow_id)}
    expected = [
        r.id
        for r in rows
        if r.event not in AUDITOR_EVENTS
        and (r.login_hash == alice or (r.login_hash is None and r.flow_ref in hers))
    ]
    assert listed == expected
    by_id = {r.id: r for r in rows}
    assert {by_id[i].flow_ref for i in listed} == hers
    others = {flow_ref(s.flow_id) for s in (bob, carol, elsewhere)}
    assert not others & {by_id[i].flow_ref for i in listed}
    events = [t["event"] for t in body["traces"]]
    assert events.count("flow_started") == 2  # both of her flows, though they carry no hash
    assert {"collection_failed", "consent_given", "consent_refused", "data_delivered"} <= set(
        events
    )
    assert events[-1] == "rights_access"  # this very request, recorded before the answer
    assert not AUDITOR_EVENTS & set(events)
    assert body["traces"][0]["partner"] == {
        "client_id": stack.partner.client_id,
        "name": "Partner A",
    }
    # No login hash goes out: the login route must not become a way to compute them.
    assert alice not in answer.text and "hmac-sha256" not in answer.text
    assert body["kept"][0]["rows"] == len(listed)
    assert "13 months" in body["kept"][0]["reason"]

    # By a fresh sign-in at the bank: the same rows, plus the proof's own row and this request.
    proof = proof_of(stack)
    by_proof = rights(stack, "traces", {"proof": proof})
    assert by_proof.status_code == 200, by_proof.text
    again = by_proof.json()["traces"]
    assert [t["id"] for t in again[: len(listed)]] == listed
    assert [(t["event"], t["outcome"]) for t in again[len(listed) :]] == [
        ("rights_proof", "verified"),
        ("rights_access", "proof"),
    ]
    assert by_proof.json()["identified_by"] == "proof"
    assert "hmac-sha256" not in by_proof.text
    # Someone with no history (erin, at the energy supplier): nothing but the sign-in and the
    # request, in the same shape.
    stranger = rights(
        stack,
        "traces",
        {"proof": proof_of(stack, "erin", "erin-pass", data_source="sandbox-energy")},
    )
    assert stranger.status_code == 200
    assert [t["event"] for t in stranger.json()["traces"]] == ["rights_proof", "rights_access"]
    assert set(stranger.json()) == set(by_proof.json())
    assert set(stranger.json()["kept"][0]) == set(by_proof.json()["kept"][0])


# -- erasure and portability ------------------------------------------------------------------


def test_erasure_removes_the_kept_identity_and_says_why_the_trace_stays(stack: Stack) -> None:
    share, receipt, received = share_and_deliver(stack)
    redis = stack.raw_redis()
    assert redis.exists(identity_key(share)) == 1
    ref = flow_ref(share.flow_id)
    trail_before = stack.audit_rows(flow_id=share.flow_id)

    # Export, while the identity data is held: the traces and the identity data.
    export = rights(stack, "export", {"receipt": receipt})
    assert export.status_code == 200, export.text
    assert "sharelock-export-" in export.headers["content-disposition"]
    document = export.json()
    assert document["format"] == "sharelock-rights-export/1"
    assert document["identity_data"]["identity"] == received["data"]["identity"]
    assert document["identity_data"]["flow_ref"] == ref
    assert {t["id"] for t in document["traces"]} >= {r.id for r in trail_before}
    assert document["receipt"]["consent"]["partner"]["name"] == "Partner A"
    row = rights_rows(stack)[-1]
    assert (row.event, row.actor, row.outcome, row.flow_ref) == (
        "rights_export",
        "person",
        "receipt",
        ref,
    )
    assert row.login_hash == trail_before[-1].login_hash is not None

    # A bare login is no longer a way in, to erasure or to anything else.
    refused = rights(stack, "erasure", {"data_source": "sandbox-bank", "login": "alice"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert redis.exists(identity_key(share)) == 1

    erased = rights(stack, "erasure", {"receipt": receipt})
    assert erased.status_code == 200, erased.text
    assert redis.exists(identity_key(share)) == 0
    answer = erased.json()
    assert answer["erased"] == {"identity_data": True, "maintenance_credentials": 0}
    kept = answer["kept"][0]
    assert kept["what"] == "audit_trace" and kept["retention_days"] == 396
    assert "13 months" in kept["reason"] and "Art. 17(3)" in kept["reason"]
    until = datetime.fromisoformat(kept["until"])
    assert timedelta(days=395) < until - datetime.now(UTC) < timedelta(days=397)
    assert "Partner A" in answer["recipient"]["note"]
    row = rights_rows(stack)[-1]
    assert (row.event, row.detail_code, row.flow_ref) == ("rights_erasure", "identity_held", ref)
    # The trail itself is untouched: every row of the share is still there, as it was.
    assert stack.audit_rows(flow_id=share.flow_id)[: len(trail_before)] == trail_before

    again = rights(stack, "erasure", {"receipt": receipt})
    assert again.status_code == 200 and again.json()["erased"] == {
        "identity_data": False,
        "maintenance_credentials": 0,
    }
    assert rights_rows(stack)[-1].detail_code == "nothing_held"
    after = rights(stack, "export", {"receipt": receipt}).json()
    assert after["identity_data"] is None and "Martin" not in json.dumps(after)


def test_every_rights_request_is_audited_first_and_fails_closed(stack: Stack) -> None:
    share, receipt, _ = share_and_deliver(stack)
    redis = stack.raw_redis()
    assert redis.exists(identity_key(share)) == 1
    assert stack.engine is not None
    proof = proof_of(stack)
    before = len(rights_rows(stack))
    proofs_before = set(redis_keys(redis, "sl:rights-proof:*"))
    with stack.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER refuse_rights BEFORE INSERT ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
    try:
        for what, body in (
            ("traces", {"receipt": receipt}),
            ("traces", {"proof": proof}),
            ("export", {"receipt": receipt}),
            ("export", {"proof": proof}),
            ("erasure", {"receipt": receipt}),
            ("erasure", {"proof": proof}),
        ):
            answer = rights(stack, what, body)
            assert answer.status_code == 503, (what, answer.text)
            assert answer.headers["retry-after"]
            assert set(answer.json()) == {"error", "error_description"}
            for disclosed in ("flow_started", "Partner A", "Martin", "sandbox-bank", "hmac"):
                assert disclosed not in answer.text, (what, disclosed)
        assert redis.exists(identity_key(share)) == 1  # the erasure did not happen
        # A sign-in whose row cannot be written gives no proof.
        refused = prove(stack, "alice", "alice-pass")
        assert refused.status_code == 503, refused.text
        assert set(redis_keys(redis, "sl:rights-proof:*")) == proofs_before
    finally:
        with stack.engine.begin() as connection:
            connection.execute(text("DROP TRIGGER refuse_rights"))
    assert len(rights_rows(stack)) == before
    for what in ("traces", "export", "erasure"):
        assert rights(stack, what, {"receipt": receipt}).status_code == 200
    assert [r.event for r in rights_rows(stack)[before:]] == [
        "rights_access",
        "rights_export",
        "rights_erasure",
    ]
    assert redis.exists(identity_key(share)) == 0


def test_bad_requests_are_clear_and_a_bare_login_is_refused(stack: Stack) -> None:
    _, receipt = approved(stack)
    proof = proof_of(stack)
    before = len(rights_rows(stack))
    for what in ("traces", "export", "erasure"):
        for body in (
            {},
            {"data_source": "sandbox-bank", "login": "alice"},  # the old login-only look-up
            {"data_source": "sandbox-bank", "login": PLANTED_LOGIN},
            {"receipt": receipt, "login": "alice", "data_source": "sandbox-bank"},
            {"proof": proof, "login": "alice"},
            {"receipt": receipt, "proof": proof},
            {"login": "alice"},
            {"proof": "y" * 300},
        ):
            answer = rights(stack, what, body)
            assert answer.status_code == 400, (what, body, answer.text)
            assert set(answer.json()) == {"error", "error_description"}
            for secret in (PLANTED_LOGIN, receipt, proof, "y" * 300):
                assert secret not in answer.text
        for handle in ("not-a-proof", "A" * 43, proof[:-1] + ("B" if proof[-1] != "B" else "C")):
            answer = rights(stack, what, {"proof": handle})
            assert answer.status_code == 400, (what, answer.text)
            assert answer.json()["error"] == "invalid_proof"
    assert len(rights_rows(stack)) == before  # nothing answered, nothing recorded

    credentials = sealed(stack, {"login": "alice", "password": "alice-pass"})
    for body in (
        {"data_source": "not-a-source", "credentials": credentials},
        {"data_source": "sandbox-bank", "credentials": "a.b.c.d.e"},
        {"data_source": "sandbox-bank", "credentials": "not a jwe"},
        {"data_source": "sandbox-bank", "login": "alice", "password": "alice-pass"},
        {"data_source": "sandbox-bank", "credentials": sealed(stack, {"login": "alice"})},
        {"credentials": credentials},
    ):
        answer = rights(stack, "proofs", body)
        assert answer.status_code == 400, (body, answer.text)
        assert set(answer.json()) == {"error", "error_description"}
        assert "alice" not in answer.text
    otp = sealed(stack, {"otp": "123456"})
    for body in ({"pending": "A" * 43, "otp": otp}, {"pending": "x", "otp": otp}, {"otp": otp}):
        answer = rights(stack, "proofs/otp", body)
        assert answer.status_code == 400, (body, answer.text)


def test_a_fresh_sign_in_proves_the_account_and_opens_traces_export_and_erasure(
    stack: Stack,
) -> None:
    share, _, received = share_and_deliver(stack)
    redis = stack.raw_redis()
    assert redis.exists(identity_key(share)) == 1
    ref = flow_ref(share.flow_id)
    alice = stack.audit_rows("credentials_received", flow_id=share.flow_id)[0].login_hash
    assert alice is not None

    answer = prove(stack, "alice", "alice-pass")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"status", "proof", "expires_in"}
    assert body["status"] == "verified" and body["expires_in"] == 600 == PROOF_LIFETIME.seconds
    proof = body["proof"]
    assert re.fullmatch(r"[\w-]{43}", proof)  # 256 random bits
    # Redis holds the proof under its SHA-256, sealed, for ten minutes at most; never the
    # handle, never the login, and nothing the connector collected.
    keys = redis_keys(redis)
    assert 590_000 < keys[proof_key(proof)] <= 600_000
    assert not [k for k in keys if proof in k]
    value = redis.get(proof_key(proof))
    assert value is not None and b"alice" not in value.lower() and b"hmac" not in value
    row = stack.audit_rows("rights_proof")[-1]
    assert (row.actor, row.outcome, row.data_source, row.login_hash) == (
        "person",
        "verified",
        "sandbox-bank",
        alice,
    )

    # Several uses within its lifetime: access, export, erasure.
    traces = rights(stack, "traces", {"proof": proof})
    assert traces.status_code == 200, traces.text
    refs = {t["flow_ref"] for t in traces.json()["traces"]}
    assert ref in refs
    assert {"credentials_received", "data_delivered", "rights_proof", "rights_access"} <= {
        t["event"] for t in traces.json()["traces"]
    }
    assert "hmac-sha256" not in traces.text

    export = rights(stack, "export", {"proof": proof})
    assert export.status_code == 200, export.text
    document = export.json()
    assert document["identified_by"] == "proof"
    held = {item["flow_ref"]: item for item in document["identity_data"]}
    assert held[ref]["identity"] == received["data"]["identity"]

    erased = rights(stack, "erasure", {"proof": proof})
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"]["identity_data"] is True
    assert redis.exists(identity_key(share)) == 0
    assert "Partner A" in {r["name"] for r in erased.json()["recipients"]}
    assert "13 months" in erased.json()["kept"][0]["reason"]
    assert [(r.event, r.outcome, r.login_hash) for r in rights_rows(stack)[-4:]] == [
        ("rights_proof", "verified", alice),
        ("rights_access", "proof", alice),
        ("rights_export", "proof", alice),
        ("rights_erasure", "proof", alice),
    ]
    assert rights_rows(stack)[-1].detail_code == "identity_held"
    after = rights(stack, "export", {"proof": proof}).json()
    assert ref not in {item["flow_ref"] for item in after["identity_data"]}
    assert "Martin" not in json.dumps(after)


def test_a_one_time_code_finishes_the_proof(stack: Stack) -> None:
    redis = stack.raw_redis()
    started = prove(stack, "bob", "bob-pass")
    assert started.status_code == 200, started.text
    assert set(started.json()) == {"status", "pending"}
    assert started.json()["status"] == "otp_required"
    pending = started.json()["pending"]
    assert re.fullmatch(r"[\w-]{43}", pending)
    assert 0 < redis_keys(redis)[pending_key(pending)] <= 300_000
    assert not [k for k in redis_keys(redis) if pending in k]

    def code(otp: str, handle: str = pending) -> httpx.Response:
        return rights(stack, "proofs/otp", {"pending": handle, "otp": sealed(stack, {"otp": otp})})

    # The pending handle is not a proof.
    assert rights(stack, "traces", {"proof": pending}).json()["error"] == "invalid_proof"
    wrong = code("000000")
    assert wrong.status_code == 200, wrong.text
    assert wrong.json()["status"] == "otp_required" and wrong.json()["reason"] == "invalid_otp"
    assert wrong.json()["pending"] == pending
    right = code("123456")
    assert right.status_code == 200, right.text
    assert right.json()["status"] == "verified"
    proof = right.json()["proof"]
    assert redis.exists(pending_key(pending)) == 0  # the code step is over
    again = code("123456")  # the pending handle is used up
    assert again.status_code == 400 and again.json()["error"] == "invalid_proof"

    share = Share(stack)
    assert share.start().status_code == 303
    assert share.send_credentials("bob", "bob-pass").json()["status"] == "otp_required"
    assert share.send_otp("123456").json()["status"] == "collected"
    traces = rights(stack, "traces", {"proof": proof})
    assert traces.status_code == 200, traces.text
    assert flow_ref(share.flow_id) in {t["flow_ref"] for t in traces.json()["traces"]}
    outcomes = [r.outcome for r in stack.audit_rows("rights_proof")[-3:]]
    assert outcomes == ["otp_required", "otp_required", "verified"]

    # Three wrong codes, and the pending proof is gone: sign in again.
    pending = prove(stack, "bob", "bob-pass").json()["pending"]
    assert code("000001", pending).json()["status"] == "otp_required"
    assert code("000002", pending).json()["status"] == "otp_required"
    last = code("000003", pending)
    assert last.json()["status"] == "failed" and last.json()["reason"] == "invalid_otp"
    assert redis.exists(pending_key(pending)) == 0
    assert code("123456", pending).status_code == 400


def test_a_failed_sign_in_gives_no_proof_and_no_traces(stack: Stack) -> None:
    share_and_deliver(stack)
    redis = stack.raw_redis()
    before = set(redis_keys(redis, "sl:rights-*"))
    accesses = len(stack.audit_rows("rights_access"))
    for login, password, reason in (
        ("alice", "wrong-pass", "invalid_credentials"),
        ("locked", "locked-pass", "account_locked"),
        ("   ", "alice-pass", "invalid_credentials"),
    ):
        answer = prove(stack, login, password)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "failed" and answer.json()["reason"] == reason
        assert set(answer.json()) == {"status", "reason", "message"}
        row = stack.audit_rows("rights_proof")[-1]
        assert (row.outcome, row.detail_code) == ("failed", reason)
    assert set(redis_keys(redis, "sl:rights-*")) == before  # nothing kept
    assert len(stack.audit_rows("rights_access")) == accesses  # nothing shown


def test_a_proof_sees_its_own_login_only(own_stack: Stack) -> None:
    stack = own_stack
    alice_share, _, _ = share_and_deliver(stack)
    bob = Share(stack)
    assert bob.start().status_code == 303
    assert bob.send_credentials("bob", "bob-pass").json()["status"] == "otp_required"
    assert bob.send_otp("123456").json()["status"] == "collected"
    bob_hash = stack.audit_rows("credentials_received", flow_id=bob.flow_id)[0].login_hash
    # Alice at another source is another account: her bank proof does not cover it.
    elsewhere = Share(stack, scope="identity phone")
    assert elsewhere.start().status_code == 303
    assert elsewhere.send_credentials("alice", "x", "sandbox-telecom").json()["status"] == "failed"

    traces = rights(stack, "traces", {"proof": proof_of(stack)})
    assert traces.status_code == 200
    refs = {t["flow_ref"] for t in traces.json()["traces"]}
    assert flow_ref(alice_share.flow_id) in refs
    assert flow_ref(bob.flow_id) not in refs
    assert flow_ref(elsewhere.flow_id) not in refs
    by_id = {r.id: r for r in stack.audit_rows()}
    assert bob_hash not in {by_id[t["id"]].login_hash for t in traces.json()["traces"]}
    assert {t["data_source"] for t in traces.json()["traces"]} <= {"sandbox-bank", None}


def test_an_expired_proof_is_refused(stack: Stack) -> None:
    proof = proof_of(stack)
    assert rights(stack, "traces", {"proof": proof}).status_code == 200
    redis = stack.raw_redis()
    assert redis.pexpire(proof_key(proof), 1)
    redis_wait_gone(redis, proof_key(proof))
    for what in ("traces", "export", "erasure"):
        answer = rights(stack, what, {"proof": proof})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "invalid_proof"


def redis_wait_gone(redis: Any, key: str) -> None:
    deadline = time.monotonic() + 5
    while redis.exists(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not redis.exists(key)


def test_an_envelope_is_used_once(stack: Stack) -> None:
    credentials = sealed(stack, {"login": "alice", "password": "alice-pass"})
    body = {"data_source": "sandbox-bank", "credentials": credentials}
    first = rights(stack, "proofs", body)
    assert first.status_code == 200 and first.json()["status"] == "verified"
    replayed = rights(stack, "proofs", body)
    assert replayed.status_code == 400, replayed.text
    assert replayed.json()["error"] == "invalid_request" and "proof" not in replayed.json()

    # Nor across APIs: the JWE a consent screen sent cannot prove anything here.
    share = Share(stack)
    assert share.start().status_code == 303
    sent = share.seal({"login": "alice", "password": "alice-pass"})
    collected = share.browser.post(
        f"/api/flows/{share.flow_id}/credentials",
        json={"data_source": "sandbox-bank", "credentials": sent},
    )
    assert collected.status_code == 200 and collected.json()["status"] == "collected"
    stolen = rights(stack, "proofs", {"data_source": "sandbox-bank", "credentials": sent})
    assert stolen.status_code == 400

    # Nor the one-time code's envelope.
    pending = prove(stack, "bob", "bob-pass").json()["pending"]
    otp = sealed(stack, {"otp": "123456"})
    assert rights(stack, "proofs/otp", {"pending": pending, "otp": otp}).json()["status"] == (
        "verified"
    )
    pending = prove(stack, "bob", "bob-pass").json()["pending"]
    assert rights(stack, "proofs/otp", {"pending": pending, "otp": otp}).status_code == 400
    # A refused envelope does not use up the pending sign-in.
    fresh = sealed(stack, {"otp": "123456"})
    assert rights(stack, "proofs/otp", {"pending": pending, "otp": fresh}).json()["status"] == (
        "verified"
    )


def test_planted_credentials_leak_nowhere(stack: Stack, all_logs: pytest.LogCaptureFixture) -> None:
    _, receipt = approved(stack)
    planted = prove(stack, PLANTED_LOGIN, PLANTED_PASSWORD)
    assert planted.status_code == 200 and planted.json()["status"] == "failed"
    proof = proof_of(stack)
    pending = prove(stack, "bob", "bob-pass").json()["pending"]
    wrong_otp = "975310"
    assert (
        rights(
            stack, "proofs/otp", {"pending": pending, "otp": sealed(stack, {"otp": wrong_otp})}
        ).json()["status"]
        == "otp_required"
    )
    bob = rights(stack, "proofs/otp", {"pending": pending, "otp": sealed(stack, {"otp": "123456"})})
    assert bob.json()["status"] == "verified"
    for what in ("traces", "export", "erasure"):
        assert rights(stack, what, {"proof": proof}).status_code == 200
        assert rights(stack, what, {"proof": bob.json()["proof"]}).status_code == 200
    assert rights(stack, "traces", {"receipt": receipt}).status_code == 200

    secrets = [
        PLANTED_LOGIN,
        PLANTED_PASSWORD,
        "alice-pass",
        "bob-pass",
        wrong_otp,
        "123456",
        proof,
        pending,
    ]
    redis = stack.raw_redis()
    dumped = b"".join(key.encode() + (redis.dump(key) or b"") for key in redis_keys(redis))
    assert stack.engine is not None
    with stack.engine.connect() as connection:
        rows = repr(connection.execute(text("SELECT * FROM audit_events")).all())
    logged = "\n".join(record.getMessage() for record in all_logs.records)
    assert logged  # the server's log lines were captured
    for secret in [*secrets, "planted.rights"]:
        # Whole tokens only: hex digests and timestamps hold any six digits now and then.
        word = re.escape(secret.lower())
        pattern = f"(?<![0-9a-z]){word}(?![0-9a-z])"
        assert not re.search(pattern.encode(), dumped.lower()), secret
        assert not re.search(pattern, rows.lower()), secret
        assert not re.search(pattern, logged.lower()), secret
    for value in ALICE_VALUES:
        if value.isdigit():  # whole numbers only: a timing or a port may hold these digits
            number = re.compile(f"(?<![0-9.]){value}(?![0-9])")
            assert not number.search(logged) and not number.search(rows), value
        else:
            assert value not in logged and value not in rows


def test_the_rights_page_is_served_in_both_languages_under_a_strict_policy(stack: Stack) -> None:
    for lang, title in (("en", "Your data at Sharelock"), ("fr", "Vos données chez Sharelock")):
        page = httpx.get(f"{stack.url}/rights?lang={lang}", timeout=10)
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert page.headers["cache-control"] == "no-store"
        assert f'<html lang="{lang}">' in page.text and title in page.text
        assert '<script src="/static/rights.js"></script>' in page.text
        assert "<script>" not in page.text and " style=" not in page.text
        assert 'value="sandbox-bank"' in page.text
        # Sign in again (login and password, encrypted in the page), then a code if asked.
        assert 'id="proof-form"' in page.text and 'id="otp-form"' in page.text
        assert 'type="password"' in page.text and 'id="login-form"' not in page.text
        scripts = re.findall(r'<script src="([^"]+)"></script>', page.text)
        assert scripts == ["/static/consent.js", "/static/rights.js"]
    script = httpx.get(f"{stack.url}/static/rights.js", timeout=10)
    assert script.status_code == 200
    for path in ("/api/rights/traces", "/api/rights/proofs", "/api/rights/proofs/otp"):
        assert path in script.text
    assert "encryptCredentials" in script.text
    assert "encryptCredentials" in httpx.get(f"{stack.url}/static/consent.js", timeout=10).text
