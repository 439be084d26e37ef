"""What the interop tests with off-the-shelf client libraries share (`test_interop_*.py`): the
person's part of a share (the consent screen, driven through its API once the library has built
the authorization URL), the partner's key for encrypted deliveries, and the checks of every
delivery format as a partner makes them, with joserfc against the broker's published JWKS."""

from __future__ import annotations

from typing import Any

import httpx
from joserfc import jwe, jwt
from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey

from tests.support.broker import RegisteredPartner, Share, Stack

SCOPE = "identity address"
FAMILY_NAME = "Martin"  # alice of the sandbox bank (docs/sandbox.md)
CITY = "Lyon"
DELIVERIES = ("json", "jws", "jwe")


def consent(stack: Stack, partner: RegisteredPartner, authorization_url: str) -> str:
    """The person's part: open the authorization URL the library built, log in at the sandbox
    bank, approve, follow Continue. Returns the callback URL the browser lands on."""
    share = Share(stack, partner=partner, scope=SCOPE)
    opened = share.browser.get(authorization_url)
    assert opened.status_code == 303, opened.text
    assert opened.headers["location"].startswith("/consent/")
    share.flow_id = opened.headers["location"].rsplit("/", 1)[-1]
    share.collect_started()
    decision = share.decide(True)
    assert decision.status_code == 200, decision.text
    landed = share.browser.get(decision.json()["redirect_to"])
    assert landed.status_code == 303, landed.text
    location: str = landed.headers["location"]
    assert location.startswith(partner.redirect_uri + "?"), location
    return location


def encryption_key(alg: str) -> ECKey | RSAKey:
    """The partner's key pair for `jwe` deliveries (ECDH-ES on P-256, or RSA-OAEP-256)."""
    parameters: KeyParameters = {"use": "enc", "alg": alg}
    if alg == "ECDH-ES":
        return ECKey.generate_key("P-256", parameters=parameters, private=True)
    return RSAKey.generate_key(2048, parameters=parameters, private=True)


def public_jwk(key: ECKey | RSAKey) -> dict[str, Any]:
    """The public JWK as the operator registers it, with its RFC 7638 thumbprint as `kid`."""
    return {**key.as_dict(private=False), "kid": key.thumbprint()}


def assert_json_delivery(body: dict[str, Any], client_id: str) -> None:
    assert body["client_id"] == client_id
    assert body["data_source"] == "sandbox-bank"
    assert set(body["scopes"]) == set(SCOPE.split())
    assert body["data"]["identity"]["family_name"] == FAMILY_NAME
    assert body["data"]["address"]["city"] == CITY


def assert_signed_delivery(stack: Stack, compact: str, client_id: str) -> dict[str, Any]:
    """A `jws` delivery (or the JWS inside a `jwe` one), verified as a partner verifies it:
    joserfc against the broker's published JWKS; the claims in the shape of OpenID Connect for
    Identity Assurance."""
    keys = KeySet.import_key_set(httpx.get(f"{stack.url}/.well-known/jwks.json").json())
    token = jwt.decode(compact, keys, algorithms=["ES256"])
    assert token.header["alg"] == "ES256" and token.header["typ"] == "JWT"
    claims: dict[str, Any] = dict(token.claims)
    assert claims["iss"] == stack.url
    assert claims["aud"] == client_id
    assert claims["data_source"] == "sandbox-bank"
    assert set(claims["scopes"]) == set(SCOPE.split())
    verified = claims["verified_claims"]
    evidence = verified["verification"]["evidence"]
    assert evidence[0]["type"] == "electronic_record"
    assert evidence[0]["record"]["source"]["name"] == "sandbox-bank"
    assert verified["claims"]["identity"]["family_name"] == FAMILY_NAME
    assert verified["claims"]["address"]["city"] == CITY
    return claims


def assert_delivery(
    stack: Stack,
    delivery: str,
    content_type: str,
    body: Any,
    client_id: str,
    decryption_key: ECKey | RSAKey | None = None,
) -> None:
    """A 200 answer of `GET /v1/share` in the partner's registered format, opened and checked:
    JSON as is; a `jws` verified; a `jwe` decrypted with the partner's key, then verified."""
    if delivery == "json":
        assert content_type.startswith("application/json"), content_type
        assert_json_delivery(body, client_id)
        return
    assert content_type.startswith("application/jwt"), content_type
    assert isinstance(body, str)
    if delivery == "jws":
        assert body.count(".") == 2  # a compact JWS, nothing encrypted
        assert_signed_delivery(stack, body, client_id)
        return
    assert delivery == "jwe" and decryption_key is not None
    alg = str(decryption_key.as_dict()["alg"])
    decrypted = jwe.decrypt_compact(body, decryption_key, algorithms=[alg, "A256GCM"])
    header = decrypted.protected
    assert header["alg"] == alg and header["enc"] == "A256GCM" and header["cty"] == "JWT"
    assert decrypted.plaintext is not None
    assert_signed_delivery(stack, decrypted.plaintext.decode("ascii"), client_id)
