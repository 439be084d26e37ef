"""Signed and encrypted delivery through whole shares over real HTTP, Redis, SQLite, SoftHSM
and the sandbox: a partner registered with `--delivery jws` receives a JWT signed in the HSM,
one with `--delivery jwe` that JWT encrypted to its own key (P-256 or RSA), and each verifies
it with an off-the-shelf library (joserfc) against the broker's published JWKS."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from joserfc import jwe, jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from sharelock.registry import InvalidPartner
from tests.support.broker import RegisteredPartner, Share, Stack


def delivered(stack: Stack, partner: RegisteredPartner) -> httpx.Response:
    share = Share(stack, partner=partner)
    share.collect()
    token = share.exchange(share.approve_and_get_code())
    assert token.status_code == 200, token.text
    response = share.fetch(token.json()["access_token"])
    assert response.status_code == 200, response.text
    return response


def broker_keys(stack: Stack) -> KeySet:
    return KeySet.import_key_set(httpx.get(f"{stack.url}/.well-known/jwks.json").json())


def verified(stack: Stack, partner: RegisteredPartner, signed: str) -> dict[str, Any]:
    """What a partner checks: the broker's signature, then iss, aud and the shape."""
    token = jwt.decode(signed, broker_keys(stack), algorithms=["ES256"])
    claims: dict[str, Any] = dict(token.claims)
    assert token.header["alg"] == "ES256"
    assert claims["iss"] == stack.url and claims["aud"] == partner.client_id
    verification = claims["verified_claims"]["verification"]
    assert verification["trust_framework"] == "sharelock_data_source"
    (evidence,) = verification["evidence"]
    assert evidence["type"] == "electronic_record"
    assert evidence["record"]["source"]["name"] == "sandbox-bank"
    read_at = datetime.fromisoformat(verification["time"])
    assert read_at <= datetime.fromisoformat(claims["delivered_at"])
    return claims


def test_a_jws_delivery_is_signed_in_the_hsm(stack: Stack) -> None:
    partner = stack.add_partner("Signed Shop", purpose="signed delivery", delivery_format="jws")
    response = delivered(stack, partner)
    assert response.headers["content-type"].startswith("application/jwt")
    assert response.headers["cache-control"] == "no-store"
    claims = verified(stack, partner, response.text)
    identity = claims["verified_claims"]["claims"]["identity"]
    assert identity["family_name"] == "Martin"
    assert claims["scopes"] and claims["data_source"] == "sandbox-bank"
    # A byte changed anywhere breaks it.
    head, body, signature = response.text.split(".")
    forged = f"{head}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{signature}"
    with pytest.raises(Exception):  # noqa: B017  # joserfc's BadSignatureError, or a decode error
        jwt.decode(forged, broker_keys(stack), algorithms=["ES256"])


@pytest.mark.parametrize("kty", ["EC", "RSA"])
def test_a_jwe_delivery_is_for_the_partner_alone(stack: Stack, kty: str) -> None:
    key: ECKey | RSAKey = (
        ECKey.generate_key("P-256", parameters={"use": "enc", "kid": "enc-1"})
        if kty == "EC"
        else RSAKey.generate_key(2048, parameters={"use": "enc", "kid": "enc-1"})
    )
    partner = stack.add_partner(
        f"Encrypted Shop {kty}",
        purpose="encrypted delivery",
        delivery_format="jwe",
        jwks={"keys": [key.as_dict(private=False)]},
    )
    response = delivered(stack, partner)
    assert response.headers["content-type"].startswith("application/jwt")
    assert response.text.count(".") == 4  # a compact JWE
    assert "Martin" not in response.text
    opened = jwe.decrypt_compact(
        response.text, key, algorithms=["ECDH-ES", "RSA-OAEP-256", "A256GCM"]
    )
    assert opened.protected["enc"] == "A256GCM" and opened.protected["cty"] == "JWT"
    assert opened.protected["alg"] == ("ECDH-ES" if kty == "EC" else "RSA-OAEP-256")
    assert opened.plaintext is not None
    claims = verified(stack, partner, opened.plaintext.decode("ascii"))
    assert claims["verified_claims"]["claims"]["identity"]["family_name"] == "Martin"
    # Another key cannot open it.
    stranger = ECKey.generate_key("P-256") if kty == "EC" else RSAKey.generate_key(2048)
    with pytest.raises(Exception):  # noqa: B017  # joserfc's DecodeError
        jwe.decrypt_compact(
            response.text, stranger, algorithms=["ECDH-ES", "RSA-OAEP-256", "A256GCM"]
        )


def test_a_json_partner_still_gets_json(stack: Stack) -> None:
    response = delivered(stack, stack.partner)
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["data"]["identity"]["family_name"] == "Martin"


def test_jwe_needs_an_encryption_key(stack: Stack) -> None:
    signing_only = ECKey.generate_key("P-256", parameters={"use": "sig"})
    with pytest.raises(InvalidPartner, match="use: enc"):
        stack.add_partner(
            "No Enc Key",
            delivery_format="jwe",
            jwks={"keys": [signing_only.as_dict(private=False)]},
        )
    with pytest.raises(InvalidPartner, match="delivery 'xml'"):
        stack.add_partner("Odd", delivery_format="xml")
