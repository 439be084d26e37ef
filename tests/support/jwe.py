"""Build compact JWEs part by part, so tests can make valid ones and tamper with each part.

Independent of the broker's code: it uses pyca/cryptography directly, as a browser would use
Web Crypto."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, replace
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_key_from_jwk(jwk: dict[str, Any]) -> rsa.RSAPublicKey:
    def as_int(value: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")

    return rsa.RSAPublicNumbers(as_int(jwk["e"]), as_int(jwk["n"])).public_key()


OAEP = {
    "RSA-OAEP": padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None),
    "RSA-OAEP-256": padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
}


@dataclass(frozen=True)
class JweParts:
    protected: str
    encrypted_key: str
    iv: str
    ciphertext: str
    tag: str

    def compact(self) -> str:
        return ".".join((self.protected, self.encrypted_key, self.iv, self.ciphertext, self.tag))

    def with_(self, **changes: str) -> JweParts:
        return replace(self, **changes)


def build(
    jwk: dict[str, Any],
    plaintext: bytes,
    *,
    header: dict[str, Any] | None = None,
    alg: str = "RSA-OAEP",
    cek: bytes | None = None,
    iv: bytes | None = None,
    raw_header: bytes | None = None,
) -> JweParts:
    """A compact JWE for `jwk` (the broker's published key). `header` replaces the default
    protected header; `raw_header` gives its exact bytes (for duplicate members and the like)."""
    protected_json = (
        raw_header
        or json.dumps(
            header if header is not None else {"alg": alg, "enc": "A256GCM", "kid": jwk["kid"]}
        ).encode()
    )
    protected = b64u(protected_json)
    cek = cek if cek is not None else os.urandom(32)
    iv = iv if iv is not None else os.urandom(12)
    encrypted_key = public_key_from_jwk(jwk).encrypt(cek, OAEP[alg])
    sealed = AESGCM(cek if len(cek) in (16, 24, 32) else os.urandom(32)).encrypt(
        iv, plaintext, protected.encode("ascii")
    )
    return JweParts(
        protected, b64u(encrypted_key), b64u(iv), b64u(sealed[:-16]), b64u(sealed[-16:])
    )
