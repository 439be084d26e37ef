"""A partner using a standard OAuth client, Authlib's httpx `OAuth2Client`, with no code written
for Sharelock: endpoints from the discovery metadata, PKCE S256, the request pushed (RFC 9126,
required) with the client authentication Authlib uses at the token endpoint,
`client_secret_basic` (and `private_key_jwt`), then `GET /v1/share` with the token it got. The
person's side is driven through the consent API, as the consent page's script does."""

from __future__ import annotations

import time
import warnings
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

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
    assert body["require_pushed_authorization_requests"] is True
    return body


def pushed_authorization_url(
    client: OAuth2Client, metadata: dict[str, Any], verifier: str
) -> tuple[str, str]:
    """PAR with Authlib's own pieces (it has no PAR helper): the request it builds, pushed with
    the client authentication it uses at the token endpoint; the browser's URL carries only
    `client_id` and `request_uri`."""
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier
    )
    params = dict(parse_qsl(urlsplit(url).query))
    assert params["code_challenge_method"] == "S256" and params["code_challenge"]
    pushed = client.post(
        metadata["pushed_authorization_request_endpoint"],
        data=params,
        auth=client.client_auth(client.token_endpoint_auth_method),
    )
    assert pushed.status_code == 201, pushed.text
    query = urlencode({"client_id": client.client_id, "request_uri": pushed.json()["request_uri"]})
    return f"{metadata['authorization_endpoint']}?{query}", state


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
    left = person.browser.get(decision.json()["redirect_to"])  # Continue: the code is issued now
    assert left.status_code == 303, left.text
    callback: str = left.headers["location"]
    return callback


def share_with(client: OAuth2Client, stack: Stack, metadata: dict[str, Any]) -> dict[str, Any]:
    verifier = generate_token(64)
    url, state = pushed_authorization_url(client, metadata, verifier)
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


class FreshPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's `PrivateKeyJWT` with a short `exp` computed at each signature. (Authlib writes
    the `jti` it generates into the `claims` dict it was given, so one dict shared between the
    push and the token request would replay the first `jti`: fresh claims each time.)"""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        self.claims = {"exp": int(time.time()) + 120}
        return super().sign(auth, token_endpoint)


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
        # Configuration, not code: the broker takes assertions whose `aud` is its issuer
        # (Authlib's default is the URL it posts to), signed PS256, ES256 or EdDSA (Authlib's
        # default is RS256), living 5 minutes at most (Authlib's default is one hour).
        assert "PS256" in metadata["token_endpoint_auth_signing_alg_values_supported"]
        client.register_client_auth_method(FreshPrivateKeyJWT(metadata["issuer"], alg="PS256"))
        shared = share_with(client, stack, metadata)
    assert shared["client_id"] == partner.client_id
    assert set(shared["data"]) == {"identity"}


def test_authlib_sees_a_wrong_secret_as_a_standard_error(
    stack: Stack, metadata: dict[str, Any]
) -> None:
    partner = stack.partner

    def authlib_client(secret: str) -> OAuth2Client:
        return OAuth2Client(
            client_id=partner.client_id,
            client_secret=secret,
            token_endpoint_auth_method="client_secret_basic",
            scope=SCOPE,
            redirect_uri=partner.redirect_uri,
            code_challenge_method="S256",
            timeout=30,
        )

    verifier = generate_token(64)
    with authlib_client("not-the-secret") as wrong:
        # The push is refused first: a standard 401 with the Basic challenge.
        with pytest.raises(AssertionError, match="invalid_client"):
            pushed_authorization_url(wrong, metadata, verifier)
        # Pushed with the right secret and approved, then redeemed with the wrong one.
        with authlib_client(partner.client_secret) as right:
            url, state = pushed_authorization_url(right, metadata, verifier)
        callback = consent_in_browser(stack, url, state)
        with pytest.raises(Exception, match="invalid_client"):
            wrong.fetch_token(
                metadata["token_endpoint"],
                authorization_response=callback,
                state=state,
                code_verifier=verifier,
            )
