"""Interoperability with Authlib (Python, its httpx `OAuth2Client`) through whole shares over
real HTTP, Redis, SQLite, SoftHSM and the sandbox, for each profile and delivery format; this
module plays the person at the consent screen in between and opens each delivery with
joserfc against the broker's JWKS, as a partner does.

- basic: `client_secret_basic`, PAR, a plain query response, a bearer token; delivered as json,
  jws and jwe (ECDH-ES);
- fapi2: `private_key_jwt` ES256 (Authlib's `PrivateKeyJWT`, configured: `aud` the issuer, a
  short `exp`), PAR, DPoP-bound token; delivered as json, jws and jwe (RSA-OAEP-256).

Authlib's client has no DPoP (nor JAR, JARM or a PAR helper): the DPoP proofs for /par,
/token and /v1/share are made here with joserfc (`DPoPKey`) and given to Authlib as a header
(/par, `fetch_token`) and as an httpx `Auth` for the resource call (`DPoPTokenAuth`); the
push is Authlib's own request, posted with its client authentication."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import warnings
from collections.abc import Generator
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.support.broker import RegisteredPartner, Stack
from tests.support.interop import (
    DELIVERIES,
    SCOPE,
    assert_delivery,
    consent,
    encryption_key,
    public_jwk,
)

with warnings.catch_warnings():
    # Authlib announces a future move of its httpx integration; the API used here stays.
    # (Its deprecation module sets its own "always" filter when imported: import it first.)
    from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]
    from authlib.oauth2.rfc7523 import PrivateKeyJWT  # type: ignore[import-untyped]

# The encryption key each profile's `jwe` partner registers (the other way round from the
# openid-client test: each profile meets both algorithms).
ENC_ALG = {"basic": "ECDH-ES", "fapi2": "RSA-OAEP-256"}


@pytest.fixture(scope="module")
def metadata(stack: Stack) -> dict[str, Any]:
    """RFC 8414 discovery (Authlib's client has none of its own)."""
    response = httpx.get(f"{stack.url}/.well-known/oauth-authorization-server", timeout=10)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["require_pushed_authorization_requests"] is True
    assert "ES256" in body["token_endpoint_auth_signing_alg_values_supported"]
    assert "ES256" in body["dpop_signing_alg_values_supported"]
    return body


class DPoPKey:
    """The partner's DPoP key for one share, and the proofs it signs (RFC 9449 §4.2)."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", private=True)

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"])

    def header(self, method: str, url: str) -> dict[str, str]:
        return {"DPoP": self.proof(method, url)}


class DPoPTokenAuth(httpx.Auth):
    """`Authorization: DPoP <token>` and a fresh proof (`ath` included) on each request: what
    Authlib's token auth does for a bearer token. (Its own raises on `token_type: DPoP`.)"""

    def __init__(self, access_token: str, dpop: DPoPKey) -> None:
        self.access_token = access_token
        self.dpop = dpop

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        htu = str(request.url.copy_with(query=None, fragment=None))
        request.headers["Authorization"] = f"DPoP {self.access_token}"
        request.headers["DPoP"] = self.dpop.proof(request.method, htu, self.access_token)
        yield request


class FreshPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's `PrivateKeyJWT` with a short `exp` computed at each signature (its default
    is an hour; the broker takes 5 minutes at most). Authlib writes the `jti` it generates into
    the `claims` dict it was given: fresh claims each time, or the second use replays it."""

    def sign(self, auth: Any, token_endpoint: str) -> Any:
        self.claims = {"exp": int(time.time()) + 120}
        return super().sign(auth, token_endpoint)


def authlib_client(
    profile: str, partner: RegisteredPartner, metadata: dict[str, Any], key: ECKey | None
) -> OAuth2Client:
    """The client as a partner configures it, per profile."""
    common = {
        "client_id": partner.client_id,
        "scope": SCOPE,
        "redirect_uri": partner.redirect_uri,
        "code_challenge_method": "S256",
        "timeout": 30,
    }
    if profile == "basic":
        return OAuth2Client(
            client_secret=partner.client_secret,
            token_endpoint_auth_method="client_secret_basic",
            **common,
        )
    assert key is not None
    client = OAuth2Client(client_secret=key, token_endpoint_auth_method="private_key_jwt", **common)
    # The broker takes assertions whose `aud` is its issuer (Authlib's default is the URL it
    # posts to), signed PS256, ES256 or EdDSA (Authlib's default is RS256), naming their key
    # (Authlib's default sends no `kid`, which the broker needs when the partner's JWKS holds
    # more than one key: see test_an_assertion_without_kid_among_several_keys).
    assertion = FreshPrivateKeyJWT(
        metadata["issuer"], headers={"kid": key.thumbprint()}, alg="ES256"
    )
    client.register_client_auth_method(assertion)
    return client


def pushed_authorization_url(
    client: OAuth2Client, metadata: dict[str, Any], verifier: str, dpop: DPoPKey | None
) -> tuple[str, str]:
    """PAR with Authlib's own pieces: the request it builds, pushed with the client
    authentication it uses at the token endpoint (and a DPoP proof, which binds the code to
    the key); the browser's URL carries only `client_id` and `request_uri`."""
    url, state = client.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier
    )
    endpoint = metadata["pushed_authorization_request_endpoint"]
    pushed = client.post(
        endpoint,
        data=dict(parse_qsl(urlsplit(url).query)),
        auth=client.client_auth(client.token_endpoint_auth_method),
        headers=dpop.header("POST", endpoint) if dpop else None,
    )
    assert pushed.status_code == 201, pushed.text
    query = urlencode({"client_id": client.client_id, "request_uri": pushed.json()["request_uri"]})
    return f"{metadata['authorization_endpoint']}?{query}", state


def register(
    stack: Stack, profile: str, delivery: str
) -> tuple[RegisteredPartner, ECKey | None, ECKey | RSAKey | None]:
    """The partner, its private_key_jwt key (fapi2) and its decryption key (jwe)."""
    keys: list[dict[str, Any]] = []
    client_key: ECKey | None = None
    if profile == "fapi2":
        client_key = ECKey.generate_key("P-256", parameters={"use": "sig"}, private=True)
        keys.append({**public_jwk(client_key), "alg": "ES256"})
    enc_key: ECKey | RSAKey | None = None
    if delivery == "jwe":
        enc_key = encryption_key(ENC_ALG[profile])
        keys.append(public_jwk(enc_key))
    partner = stack.add_partner(
        f"Authlib {profile} {delivery}",
        purpose="Authlib interop tests",
        profile=profile,
        delivery_format=delivery,
        jwks={"keys": keys} if keys else None,
    )
    return partner, client_key, enc_key


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("profile", ["basic", "fapi2"])
def test_whole_share(stack: Stack, metadata: dict[str, Any], profile: str, delivery: str) -> None:
    partner, client_key, enc_key = register(stack, profile, delivery)
    dpop = DPoPKey() if profile == "fapi2" else None
    share_url = f"{stack.url}/v1/share"
    with authlib_client(profile, partner, metadata, client_key) as client:
        verifier = generate_token(64)
        url, state = pushed_authorization_url(client, metadata, verifier, dpop)
        callback = consent(stack, partner, url)
        # Authlib does not check RFC 9207's `iss`: the partner does.
        assert parse_qs(urlsplit(callback).query)["iss"] == [metadata["issuer"]]
        token_endpoint = metadata["token_endpoint"]
        token = client.fetch_token(
            token_endpoint,
            authorization_response=callback,
            state=state,
            code_verifier=verifier,
            headers=dpop.header("POST", token_endpoint) if dpop else None,
        )
        assert token["token_type"] == ("DPoP" if dpop else "Bearer")
        auth = DPoPTokenAuth(token["access_token"], dpop) if dpop else httpx.USE_CLIENT_DEFAULT
        response = client.get(share_url, auth=auth)
        assert response.status_code == 200, response.text
        content_type = response.headers["content-type"]
        body = response.json() if delivery == "json" else response.text
        assert_delivery(stack, delivery, content_type, body, partner.client_id, enc_key)
        # Delivered once: the same token (with a fresh proof) gets a standard error.
        again = client.get(share_url, auth=auth)
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_token"
    assert len(stack.audit_rows("data_delivered", client_id=partner.client_id)) == 1


def test_an_assertion_without_kid_among_several_keys(
    stack: Stack, metadata: dict[str, Any]
) -> None:
    """Authlib's `PrivateKeyJWT` as it comes (no `kid` in the header), for a fapi2 partner
    registered with its signing key and a `jwe` encryption key: the only key that can verify
    an ES256 assertion is the `use: sig` P-256 one, and RFC 7515/7523 make `kid` optional."""
    partner, client_key, _ = register(stack, "fapi2", "jwe")
    assert client_key is not None
    with authlib_client("fapi2", partner, metadata, client_key) as client:
        client.register_client_auth_method(FreshPrivateKeyJWT(metadata["issuer"], alg="ES256"))
        url, _state = pushed_authorization_url(client, metadata, generate_token(64), DPoPKey())
    assert url.startswith(metadata["authorization_endpoint"])
