"""Compact JWS (RFC 7515) with ES256, signed by the HSM and checked in software.

Signing goes through a `Signer` (the key layer: SHA-256 here, ECDSA P-256 in the token, raw
r || s as RFC 7518 §3.4 wants); verifying needs only the public JWK, so anyone holding the
broker's JWKS can check a checkpoint or a receipt with any JOSE library.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sharelock.audit.errors import AuditError

ALG = "ES256"


class Signer(Protocol):
    def sign(self, message: bytes) -> bytes: ...

    def signing_jwk(self) -> dict[str, Any]: ...


class BadSignature(AuditError):
    """The JWS is malformed, names another key or algorithm, or its signature is wrong."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadSignature("not base64url") from None


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_compact(signer: Signer, payload: Mapping[str, Any], typ: str) -> str:
    """`header.payload.signature`, header `{"alg": "ES256", "kid": …, "typ": typ}`."""
    header = {"alg": ALG, "kid": signer.signing_jwk()["kid"], "typ": typ}
    signing_input = b64url(_json(header)) + "." + b64url(_json(payload))
    return signing_input + "." + b64url(signer.sign(signing_input.encode("ascii")))


def keyring(keys: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """`keys` as kid -> JWK: one JWK (it has `kty`) or a keyring already (the broker's signing
    keys of every period, `KeyLayer.signature_keyring()`)."""
    if "kty" in keys:
        return {str(keys.get("kid")): keys}
    return {str(kid): jwk for kid, jwk in keys.items()}


def verify_compact(token: str, keys: Mapping[str, Any], typ: str) -> dict[str, Any]:
    """The payload, if `token` is an ES256 JWS of type `typ` by one of `keys` (a JWK, or a
    keyring kid -> JWK), chosen by the header's `kid`."""
    parts = token.split(".")
    if len(parts) != 3:
        raise BadSignature("not a compact JWS")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
    except ValueError:
        raise BadSignature("header or payload is not JSON") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise BadSignature("header or payload is not a JSON object")
    if header.get("alg") != ALG or header.get("typ") != typ or header.get("crit"):
        raise BadSignature(f"expected an {ALG} JWS of type {typ}")
    jwk = keyring(keys).get(str(header.get("kid")))
    if jwk is None:
        raise BadSignature("signed by another key")
    signature = b64url_decode(parts[2])
    if len(signature) != 64:
        raise BadSignature("signature of the wrong length")
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b"\x04" + b64url_decode(jwk["x"]) + b64url_decode(jwk["y"])
    )
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public.verify(der, (parts[0] + "." + parts[1]).encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise BadSignature("signature does not verify") from None
    return payload
