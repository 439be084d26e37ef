"""Revocation (RFC 7009) at `POST /revoke`, through real HTTP, Redis, SQLite, SoftHSM and the
sandbox: a partner gives up a code or an access token, and the approved data it would have
released is erased at once; a stranger's value is refused and left alone."""

from __future__ import annotations

import httpx

from sharelock.flow import flow_ref
from sharelock.flow.records import RELEASE
from tests.support.broker import Share, Stack, code_key, record_key, token_key


def revoke(stack: Stack, token: str, partner: object = None, **form: str) -> httpx.Response:
    with stack.partner_client(partner) as client:  # type: ignore[arg-type]
        return client.post("/revoke", data={"token": token, **form})


def token_for(stack: Stack) -> tuple[Share, str]:
    share = Share(stack)
    share.collect()
    exchanged = share.exchange(share.approve_and_get_code())
    assert exchanged.status_code == 200, exchanged.text
    return share, exchanged.json()["access_token"]


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


def test_a_revoked_token_delivers_nothing_and_its_data_is_erased(stack: Stack) -> None:
    share, token = token_for(stack)
    revoked = revoke(stack, token, token_type_hint="access_token")
    assert revoked.status_code == 200, revoked.text
    assert revoked.content == b""
    assert revoked.headers["cache-control"] == "no-store"
    with stack.raw_redis() as raw:
        assert raw.exists(token_key(token)) == 0
        assert raw.exists(record_key(RELEASE, flow_ref(share.flow_id))) == 0
    fetched = share.fetch(token)
    assert fetched.status_code == 401 and "data" not in fetched.json()
    assert stack.audit_rows("data_delivered", flow_id=share.flow_id) == []
    # Revoking again: the same answer, nothing to do.
    assert revoke(stack, token).status_code == 200


def test_a_revoked_code_gives_no_token(stack: Stack) -> None:
    share = Share(stack)
    share.collect()
    code = share.approve_and_get_code()
    assert revoke(stack, code, token_type_hint="authorization_code").status_code == 200
    with stack.raw_redis() as raw:
        assert raw.exists(code_key(code)) == 0
        assert raw.exists(record_key(RELEASE, flow_ref(share.flow_id))) == 0
    assert_error(share.exchange(code), 400, "invalid_grant")


def test_another_partners_token_is_refused_and_still_works_for_its_owner(stack: Stack) -> None:
    share, token = token_for(stack)
    assert_error(revoke(stack, token, partner=stack.other_partner), 400, "invalid_grant")
    delivered = share.fetch(token)
    assert delivered.status_code == 200, delivered.text


def test_unknown_values_and_bad_requests(stack: Stack) -> None:
    assert revoke(stack, "not-a-token-" + "x" * 30).status_code == 200
    assert_error(revoke(stack, ""), 400, "invalid_request")
    assert_error(revoke(stack, "t", token_type_hint="id_token"), 400, "unsupported_token_type")
    with httpx.Client(base_url=stack.url, timeout=30) as anonymous:
        refused = anonymous.post("/revoke", data={"token": "t"})
    assert_error(refused, 401, "invalid_client")
