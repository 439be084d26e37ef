"""Public JWKs of the token's RSA keys, and their RFC 7638 thumbprints (the `kid`)."""

from __future__ import annotations

from typing import Any

from joserfc.jwk import RSAKey
from joserfc.util import int_to_base64

from sharelock.keys._token import RsaPublicNumbers


def public_jwk(numbers: RsaPublicNumbers) -> dict[str, Any]:
    """The bare public JWK (`kty`, `n`, `e`) of an RSA key."""
    return {
        "kty": "RSA",
        "n": int_to_base64(int.from_bytes(numbers.modulus, "big")),
        "e": int_to_base64(int.from_bytes(numbers.public_exponent, "big")),
    }


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url without padding."""
    return str(RSAKey.import_key(jwk).thumbprint())
