"""Every right of seed 003 chapter 10 from `/rights`, over the real stack (uvicorn, SoftHSM,
Redis, SQLite, the sandbox): what the broker does at once (withdrawal cancels a share not yet
delivered; erasure, restriction and objection stop the copies it keeps), what it forwards to
the partner (a reference, the one-month deadline of Art. 12(3)), the partner's authenticated
endpoint to list and answer, the operator's `sharelock rights list`, and the rules: the same
proof as every right, audited first, fail closed, clear errors that leave nothing behind, no
login or value in the requests table.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from sharelock.db import create_engine_for
from sharelock.rights import KINDS, one_month_after
from sharelock.rights.requests import create
from tests.integration.test_rights import (
    ALICE_VALUES,
    approve,
    proof_of,
    rights,
    share_and_deliver,
)
from tests.support.broker import Share, Stack, flow_keys, sqlite_url

SHARELOCK = Path(sys.executable).parent / "sharelock"
ROOT = Path(__file__).resolve().parents[2]


def ask(stack: Stack, subject: dict[str, str], **body: Any) -> httpx.Response:
    return rights(stack, "requests", {**subject, **body})


def requests_rows(stack: Stack) -> list[dict[str, Any]]:
    assert stack.engine is not None
    with stack.engine.connect() as connection:
        return [
            dict(r) for r in connection.execute(text("SELECT * FROM rights_requests")).mappings()
        ]


def partner_list(stack: Stack, status: str = "open", partner: Any = None) -> httpx.Response:
    with stack.partner_client(partner) as client:
        return client.get("/v1/rights-requests", params={"status": status})


def partner_answer(
    stack: Stack, reference: str, outcome: str, partner: Any = None
) -> httpx.Response:
    with stack.partner_client(partner) as client:
        return client.post(f"/v1/rights-requests/{reference}/answer", data={"outcome": outcome})


def release_key(stack: Stack, share: Share) -> str:
    """The Redis key of the share's approved data (whatever slot tag the store gives it)."""
    found = [k for k in flow_keys(stack.raw_redis(), share.flow_id) if ":release:" in k]
    assert len(found) == 1, found
    return found[0]


def identity_held(stack: Stack, share: Share) -> bool:
    """Whether the identity copy of the share is in Redis (whatever its slot tag)."""
    return any(":identity:" in k for k in flow_keys(stack.raw_redis(), share.flow_id))


def pending_share(stack: Stack) -> tuple[Share, str, str]:
    """A share approved, the person gone on to the partner (a code issued), not delivered."""
    share = Share(stack)
    share.collect()
    receipt, code = approve(share)
    return share, receipt, code


def test_withdrawal_before_delivery_cancels_the_share(stack: Stack) -> None:
    share, receipt, code = pending_share(stack)
    redis = stack.raw_redis()
    release = release_key(stack, share)
    answer = ask(stack, {"receipt": receipt}, client_id=stack.partner.client_id, kind="withdrawal")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["done"]["pending_shares_cancelled"] == 1
    assert body["received"] is False and body["forwarded"] is None
    assert body["partner"]["name"] == "Partner A" and body["partner"]["role"] == "controller"
    assert redis.exists(release) == 0
    # The partner's code gives a token, and the token nothing.
    token = share.exchange(code)
    assert token.status_code == 200, token.text
    fetched = share.fetch(token.json()["access_token"])
    assert fetched.status_code in (400, 401), fetched.text
    for value in ALICE_VALUES:
        assert value not in fetched.text
    rows = stack.audit_rows(flow_id=share.flow_id)
    assert "data_delivered" not in [r.event for r in rows]
    asked = [r for r in stack.audit_rows("rights_request") if r.detail_code == "withdrawal"]
    assert asked and asked[-1].client_id == stack.partner.client_id
    assert asked[-1].actor == "person" and (asked[-1].query or "").startswith("reference=R-")


def test_every_right_about_a_partner_that_received_data_is_forwarded_and_answered(
    stack: Stack,
) -> None:
    stack.registry.set_dpo_contact(stack.partner.client_id, "dpo@partner-a.example")
    share, receipt, _ = share_and_deliver(stack)
    assert identity_held(stack, share)
    proof = {"proof": proof_of(stack)}
    references: dict[str, str] = {}
    before = datetime.now(UTC).replace(microsecond=0)
    for kind in KINDS:
        extra: dict[str, Any] = {}
        if kind == "rectification":
            extra["fields"] = ["identity.birthdate", "address"]
        if kind == "portability":
            extra["recipient"] = "Other Bank SA, dpo@other-bank.example"
        answer = ask(stack, proof, client_id=stack.partner.client_id, kind=kind, **extra)
        assert answer.status_code == 200, (kind, answer.text)
        body = answer.json()
        assert body["received"] is True
        assert body["partner"]["dpo_contact"] == "dpo@partner-a.example"
        forwarded = body["forwarded"]
        assert forwarded["status"] == "open" and forwarded["kind"] == kind
        created = datetime.fromisoformat(forwarded["created_at"])
        assert created >= before
        assert datetime.fromisoformat(forwarded["deadline"]) == one_month_after(created)
        references[kind] = forwarded["reference"]
    # Erasure (first in KINDS after rectification) stopped the identity copy at once.
    assert not identity_held(stack, share)

    # The person sees who answers for the data, and every request with its deadline.
    view = rights(stack, "traces", proof).json()
    assert view["controller"]["dpo_contact"]
    partner = next(p for p in view["partners"] if p["client_id"] == stack.partner.client_id)
    assert partner == {
        "client_id": stack.partner.client_id,
        "name": "Partner A",
        "role": "controller",
        "dpo_contact": "dpo@partner-a.example",
        "home_url": None,
        "received": True,
    }
    seen = {r["reference"]: r for r in view["requests"]}
    assert set(references.values()) <= set(seen)
    # The receipt (same login) sees them too.
    by_receipt = rights(stack, "traces", {"receipt": receipt}).json()
    assert set(references.values()) <= {r["reference"] for r in by_receipt["requests"]}

    # The partner lists its open requests, with its own pseudonym of the person and the
    # share it can match (the SHA-256 of the access token it used).
    listed = partner_list(stack)
    assert listed.status_code == 200, listed.text
    mine = {r["reference"]: r for r in listed.json()["requests"]}
    assert set(references.values()) <= set(mine)
    one = mine[references["portability"]]
    assert one["recipient"] == "Other Bank SA, dpo@other-bank.example"
    assert one["subject_ref"].startswith("sub_") and "hmac" not in listed.text
    assert mine[references["rectification"]]["fields"] == ["identity.birthdate", "address"]
    delivered = [r for r in stack.audit_rows("data_delivered", flow_id=share.flow_id)]
    assert delivered[0].delivery_key in {s["delivery_key"] for s in one["shares"]}
    assert "alice" not in listed.text
    for value in ALICE_VALUES:
        assert value not in listed.text
    # Another partner sees none of them and cannot answer them.
    other = partner_list(stack, partner=stack.other_partner).json()["requests"]
    assert not set(references.values()) & {r["reference"] for r in other}
    refused = partner_answer(stack, references["objection"], "done", stack.other_partner)
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    # Wrong client authentication: 401, as at /token.
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        bad = client.get("/v1/rights-requests", auth=(stack.partner.client_id, "not-the-secret"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"

    # The partner answers: audited first, final, and the person sees it.
    done = partner_answer(stack, references["objection"], "done")
    assert done.status_code == 200, done.text
    assert done.json() == {"reference": references["objection"], "status": "done"}
    again = partner_answer(stack, references["objection"], "refused")
    assert again.status_code == 409 and again.json()["error"] == "already_answered"
    assert partner_answer(stack, references["restriction"], "maybe").status_code == 400
    answered = [r for r in stack.audit_rows("rights_answered")]
    assert answered[-1].actor == f"partner:{stack.partner.client_id}"
    assert answered[-1].query == f"reference={references['objection']}"
    status = {
        r["reference"]: r["status"] for r in rights(stack, "traces", proof).json()["requests"]
    }
    assert status[references["objection"]] == "done"
    assert references["objection"] not in {
        r["reference"] for r in partner_list(stack).json()["requests"]
    }
    assert references["objection"] in {
        r["reference"] for r in partner_list(stack, "done").json()["requests"]
    }

    # The same list by POST with a form body (the way for private_key_jwt), every status.
    with stack.partner_client() as client:
        everything = client.post("/v1/rights-requests", data={"status": "all"})
        bad_status = client.get("/v1/rights-requests", params={"status": "pending"})
    assert everything.status_code == 200, everything.text
    assert set(references.values()) <= {r["reference"] for r in everything.json()["requests"]}
    assert bad_status.status_code == 400 and bad_status.json()["error"] == "invalid_request"

    # The table holds pseudonyms and names, never the login or a value.
    for row in requests_rows(stack):
        flat = repr(row)
        assert "alice" not in flat
        for value in ALICE_VALUES:
            assert value not in flat
        assert str(row["subject_key"]).startswith(("hmac-sha256:", "flow:"))


def test_bad_rights_requests_are_clear_and_leave_nothing(stack: Stack) -> None:
    _, receipt, _ = share_and_deliver(stack)
    stranger = stack.add_partner("Never Shared With")
    rows_before = len(requests_rows(stack))
    audited_before = len(stack.audit_rows("rights_request"))
    subject = {"receipt": receipt}
    client_id = stack.partner.client_id
    for body in (
        {"client_id": client_id, "kind": "teleportation"},
        {"client_id": client_id},
        {"kind": "erasure"},
        {"client_id": stranger.client_id, "kind": "erasure"},
        {"client_id": "no such partner", "kind": "erasure"},
        {"client_id": client_id, "kind": "portability"},
        {"client_id": client_id, "kind": "portability", "recipient": "line\nbreak"},
        {"client_id": client_id, "kind": "erasure", "recipient": "Other Bank"},
        {"client_id": client_id, "kind": "rectification", "fields": ["identity.Martin"]},
        {"client_id": client_id, "kind": "rectification", "fields": ["1985-03-14"]},
        {"client_id": client_id, "kind": "objection", "fields": ["identity"]},
        {"client_id": client_id, "kind": "erasure", "login": "alice"},
    ):
        answer = ask(stack, subject, **body)
        assert answer.status_code == 400, (body, answer.text)
        assert set(answer.json()) == {"error", "error_description"}
        for echoed in ("Martin", "1985-03-14", "teleportation", "line\nbreak", receipt):
            assert echoed not in answer.text
    no_proof = rights(stack, "requests", {"client_id": client_id, "kind": "erasure"})
    assert no_proof.status_code == 400
    expired = ask(stack, {"proof": "A" * 43}, client_id=client_id, kind="erasure")
    assert expired.status_code == 400 and expired.json()["error"] == "invalid_proof"
    assert len(requests_rows(stack)) == rows_before
    assert len(stack.audit_rows("rights_request")) == audited_before


def test_nothing_is_done_when_the_request_cannot_be_audited(stack: Stack) -> None:
    share, receipt, _ = pending_share(stack)
    redis = stack.raw_redis()
    release = release_key(stack, share)
    _, delivered_receipt, _ = share_and_deliver(stack)
    rows_before = len(requests_rows(stack))
    assert stack.engine is not None
    with stack.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER refuse_requests BEFORE INSERT ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
    try:
        for subject in ({"receipt": receipt}, {"receipt": delivered_receipt}):
            for kind in ("withdrawal", "erasure"):
                answer = ask(stack, subject, client_id=stack.partner.client_id, kind=kind)
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"]
                assert "Partner A" not in answer.text
    finally:
        with stack.engine.begin() as connection:
            connection.execute(text("DROP TRIGGER refuse_requests"))
    assert redis.exists(release) == 1  # the share was not cancelled
    assert len(requests_rows(stack)) == rows_before


def test_the_operator_lists_requests_and_the_overdue_ones_in_80_columns(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    engine = create_engine_for(url)
    from sharelock.db import migrate

    migrate(engine)
    long_ago = datetime.now(UTC) - timedelta(days=40)
    late = create(
        engine,
        client_id="sl_" + "x" * 22,
        kind="restriction",
        subject_key="hmac-sha256:" + "0" * 64,
        data_source="sandbox-bank",
        now=long_ago,
    )
    fresh = create(
        engine,
        client_id="sl_partner",
        kind="portability",
        subject_key="hmac-sha256:" + "1" * 64,
        data_source="sandbox-bank",
        recipient="Other Bank SA",
    )
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env |= {
        "SHARELOCK_STATE_DIR": str(tmp_path / "state"),
        "SHARELOCK_DATABASE_URL": url,
        "COLUMNS": "80",
    }

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(SHARELOCK), "rights", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and "Warning" not in done.stderr
        return done.stdout

    everything = run("list")
    assert late.reference in everything and fresh.reference in everything
    assert "overdue" in everything
    assert max(len(line) for line in everything.splitlines()) <= 80, everything
    overdue = run("list", "--overdue")
    assert late.reference in overdue and fresh.reference not in overdue
    assert "hmac" not in everything + overdue
    as_json = run("list", "--json")
    assert '"overdue": true' in as_json and "subject_key" not in as_json
    assert hashlib.sha256(b"").hexdigest() not in as_json


@pytest.mark.parametrize("contact", ["line\nbreak", "x" * 401])
def test_a_bad_dpo_contact_is_refused(stack: Stack, contact: str) -> None:
    from sharelock.registry import InvalidPartner

    with pytest.raises(InvalidPartner, match="dpo_contact"):
        stack.registry.set_dpo_contact(stack.partner.client_id, contact)


def test_partners_add_and_update_set_the_dpo_contact(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env |= {
        "SHARELOCK_STATE_DIR": str(tmp_path / "state"),
        "SHARELOCK_DATABASE_URL": sqlite_url(tmp_path),
        "COLUMNS": "250",
    }

    def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(SHARELOCK), "partners", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == expect, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done

    added = json.loads(
        run(
            "add",
            "--name",
            "Shop",
            "--redirect-uri",
            "https://shop.example/cb",
            "--scope",
            "identity",
            "--profile",
            "basic",
            "--role",
            "processor",
            "--dpo-contact",
            "DPO Shop, 1 rue de la Paix, 75002 Paris",
        ).stdout
    )
    assert added["role"] == "processor"
    assert added["dpo_contact"] == "DPO Shop, 1 rue de la Paix, 75002 Paris"
    updated = json.loads(
        run("update", added["client_id"], "--dpo-contact", "dpo@shop.example").stdout
    )
    assert updated["dpo_contact"] == "dpo@shop.example" and "client_secret" not in updated
    listed = json.loads(run("list", "--json").stdout)
    assert listed[0]["dpo_contact"] == "dpo@shop.example"
    refused = run("update", added["client_id"], "--dpo-contact", "a\tb", expect=2)
    assert "dpo_contact: contains control characters" in refused.stderr
    assert "a\tb" not in refused.stderr
    unknown = run("update", "sl_nobody", "--dpo-contact", "x", expect=2)
    assert "no partner with that client id" in unknown.stderr
