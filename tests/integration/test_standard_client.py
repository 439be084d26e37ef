"""A partner using a standard OAuth client, Authlib's httpx `OAuth2Client`, with no code written
for Sharelock: endpoints from the discovery metadata, PKCE S256, `client_secret_basic` (and
`private_key_jwt`), then `GET /v1/share` with the token it got. The person's side is driven
through the consent API, as the consent page's script does."""

from __future__ import annotations

import time
import warnings
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from joserfc.jwk import RSAKey

from tests.support.broker import Share, Stack

with warnings.catch_warnings():
    # Authlib announces a future move of its httpx integration; the API used here stays.
    # (Its deprecation module sets its own "always" filter when imported: import it first.)
    from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]
    from authlib.oauth2.rfc7523 import PrivateKeyJWT  # type: ignore[import-untyped]

SCOPE = "identity address bank_account"


@pytest.fixture(scope="module")
def metadata(stack: Stack) -> dict[str, Any]:
    response = httpx.get(f"{stack.url}/.well-known/oauth-authorization-server", timeout=10)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert "client_secret_basic" in body["token_endpoint_auth_methods_supported"]
    return body


def consent_in_browser(stack: Stack, authorization_url: str, state: str) -> str:
    """What the person does: open the URL, log in at the bank, approve. Returns the URL the
    browser is sent back to, as the partner's callback receives it."""
    person = Share(stack, state=state)
    response = person.browser.get(authorization_url)
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/consent/")
    person.flow_id = response.headers["location"].rsplit("/", 1)[-1]
    assert person.browser.get(response.headers["location"]).status_code == 200
    person.collect_started()
    decision = person.decide(True)
    assert decision.status_code == 200, decision.text
    callback: str = decision.json()["redirect_to"]
    return callback


def share_with(client: OAuth2Client, stack: Stack, metadata: dict[str, Any]) -> dict[str, Any]:
    verifier = generate_token(64)
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier
    )
    assert "code_challenge=" in url and "code_challenge_method=S256" in url
    callback = consent_in_browser(stack, url, state)
    assert parse_qs(urlsplit(callback).query)["iss"] == [metadata["issuer"]]

    token = client.fetch_token(
        metadata["token_endpoint"],
        authorization_response=callback,
        state=state,
        code_verifier=verifier,
    )
    assert token["token_type"] == "Bearer"
    assert token["access_token"]

    response = client.get(f"{stack.url}/v1/share")
    assert response.status_code == 200, response.text
    shared: dict[str, Any] = response.json()
    # The token was single use: the same client asking again gets a standard error.
    again = client.get(f"{stack.url}/v1/share")
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_token"
    return shared


def test_authlib_client_secret_basic(stack: Stack, metadata: dict[str, Any]) -> None:
    partner = stack.partner
    with OAuth2Client(
        client_id=partner.client_id,
        client_secret=partner.client_secret,
        token_endpoint_auth_method="client_secret_basic",
        scope=SCOPE,
        redirect_uri=partner.redirect_uri,
        code_challenge_method="S256",
        timeout=30,
    ) as client:
        shared = share_with(client, stack, metadata)
    assert shared["client_id"] == partner.client_id
    assert shared["scopes"] == SCOPE.split()
    assert shared["data"]["bank_account"]["iban"] == "FR7699990000010001234567834"
    assert shared["data"]["identity"]["family_name"] == "Martin"
    assert len(stack.audit_rows("data_delivered", client_id=partner.client_id)) == 1


def test_authlib_private_key_jwt(stack: Stack, metadata: dict[str, Any]) -> None:
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    key = RSAKey.generate_key(2048, parameters={"kid": "authlib-1"}, private=True)
    partner = stack.add_partner(
        "Authlib JWT partner", jwks={"keys": [key.as_dict(private=False)]}, purpose="authlib"
    )
    with OAuth2Client(
        client_id=partner.client_id,
        client_secret=key.as_pem(private=True).decode(),
        token_endpoint_auth_method="private_key_jwt",
        scope="identity",
        redirect_uri=partner.redirect_uri,
        code_challenge_method="S256",
        timeout=30,
    ) as client:
        # The broker refuses assertions living over 5 minutes (plus 60 s of clock skew);
        # Authlib's default is one hour, so the partner sets a short `exp`, a configuration.
        short = {"exp": int(time.time()) + 120}
        client.register_client_auth_method(PrivateKeyJWT(metadata["token_endpoint"], claims=short))
        shared = share_with(client, stack, metadata)
    assert shared["client_id"] == partner.client_id
    assert set(shared["data"]) == {"identity"}


def test_authlib_sees_a_wrong_secret_as_a_standard_error(
    stack: Stack, metadata: dict[str, Any]
) -> None:
    partner = stack.partner
    with OAuth2Client(
        client_id=partner.client_id,
        client_secret="not-the-secret",
        token_endpoint_auth_method="client_secret_basic",
        scope=SCOPE,
        redirect_uri=partner.redirect_uri,
        code_challenge_method="S256",
        timeout=30,
    ) as client:
        verifier = generate_token(64)
        url, state = client.create_authorization_url(
            metadata["authorization_endpoint"], code_verifier=verifier
        )
        callback = consent_in_browser(stack, url, state)
        with pytest.raises(Exception, match="invalid_client"):
            client.fetch_token(
                metadata["token_endpoint"],
                authorization_response=callback,
                state=state,
                code_verifier=verifier,
            )
