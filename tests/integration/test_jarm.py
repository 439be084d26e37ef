"""JARM (`response_mode=jwt`, FAPI 2.0 Message Signing) through real HTTP, Redis, SQLite,
SoftHSM and the sandbox: the authorization response, code or error, comes back as one `response`
parameter, a JWT signed in the HSM with the broker's published `use: sig` key, which a partner
verifies with an off-the-shelf JOSE library (joserfc) against the JWKS."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.support.broker import Share, Stack


def verified(stack: Stack, location: str) -> dict[str, Any]:
    """The claims of the JARM response in `location`, checked as a partner checks them."""
    query = parse_qs(urlsplit(location).query)
    assert set(query) == {"response"}, query  # nothing else in clear: no code, no state
    keys = KeySet.import_key_set(httpx.get(f"{stack.url}/.well-known/jwks.json").json())
    token = jwt.decode(query["response"][0], keys, algorithms=["ES256"])
    claims: dict[str, Any] = dict(token.claims)
    assert token.header["alg"] == "ES256"
    assert claims["iss"] == stack.url
    assert claims["aud"] == stack.partner.client_id
    assert claims["iat"] <= time.time() + 5 < claims["exp"] + 5
    assert claims["exp"] - claims["iat"] <= 600  # JARM: short-lived
    return claims


@pytest.mark.parametrize("mode", ["jwt", "query.jwt"])
def test_the_code_comes_back_signed_and_redeems(stack: Stack, mode: str) -> None:
    share = Share(stack)
    assert share.start(response_mode=mode).status_code == 303
    share.collect_started()
    decision = share.decide(True)
    assert decision.status_code == 200, decision.text
    location = share.browser.get(decision.json()["redirect_to"]).headers["location"]
    claims = verified(stack, location)
    assert claims["state"] == share.state
    exchanged = share.exchange(claims["code"])
    assert exchanged.status_code == 200, exchanged.text
    shared = share.fetch(exchanged.json()["access_token"])
    assert shared.status_code == 200 and shared.json()["data"]["identity"]["family_name"]


def test_a_refusal_comes_back_signed(stack: Stack) -> None:
    share = Share(stack)
    assert share.start(response_mode="jwt").status_code == 303
    share.collect_started()
    refused = share.decide(False)
    claims = verified(stack, refused.json()["redirect_to"])
    assert claims["error"] == "access_denied" and claims["state"] == share.state
    assert "code" not in claims


def test_an_error_at_authorize_comes_back_signed(stack: Stack) -> None:
    """A plain request of a PAR-exempt partner is checked at /authorize: its error goes back
    in the mode it asked for, signed for that partner."""
    exempt = stack.add_partner("JARM exempt", par_exempt=True, purpose="plain requests")
    share = Share(stack, partner=exempt)
    response = share.start_plain(response_mode="jwt", code_challenge_method="plain")
    assert response.status_code == 303, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    keys = KeySet.import_key_set(httpx.get(f"{stack.url}/.well-known/jwks.json").json())
    claims = dict(jwt.decode(query["response"][0], keys, algorithms=["ES256"]).claims)
    assert claims["aud"] == exempt.client_id and claims["iss"] == stack.url
    assert claims["error"] == "invalid_request" and claims["state"] == share.state
    # At PAR the same mistake is a JSON error to the partner's back end, not a redirect.
    pushed = Share(stack).push(response_mode="jwt", code_challenge_method="plain")
    assert pushed.status_code == 400 and pushed.json()["error"] == "invalid_request"


@pytest.mark.parametrize("mode", ["form_post", "fragment", "fragment.jwt", "form_post.jwt"])
def test_other_response_modes_are_refused(stack: Stack, mode: str) -> None:
    pushed = Share(stack).push(response_mode=mode)
    assert pushed.status_code == 400, pushed.text
    assert pushed.json()["error"] == "invalid_request"
    assert "response_mode" in pushed.json()["error_description"]


def test_without_response_mode_the_answer_stays_a_plain_query(stack: Stack) -> None:
    share = Share(stack)
    share.collect()
    decision = share.decide(True)
    location = share.browser.get(decision.json()["redirect_to"]).headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert "response" not in query and query["code"] and query["iss"] == [stack.url]
