"""The client side of the envelope: what the consent page's script does, in Python.

Used by `sharelock demo --headless`, by partners' test harnesses and by the tests. It relies on
joserfc (a well-kept JOSE library) and only on the broker's published JWK, exactly as a browser
would: nothing here touches the HSM.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from joserfc import jwe
from joserfc.jwk import RSAKey

from sharelock.envelope.compact import ALLOWED_ENC


def seal_for(jwk: Mapping[str, Any], payload: Mapping[str, str]) -> str:
    """A compact JWE of `payload` (JSON) for the broker key `jwk` (its `alg` and `kid`)."""
    key = RSAKey.import_key({k: jwk[k] for k in ("kty", "n", "e")})
    header = {"alg": jwk["alg"], "enc": ALLOWED_ENC, "kid": jwk["kid"]}
    plaintext = json.dumps(dict(payload), separators=(",", ":")).encode("utf-8")
    return jwe.encrypt_compact(header, plaintext, key)


def pick_encryption_key(jwks: Mapping[str, Any]) -> Mapping[str, Any]:
    """The first key fit for credential encryption (the broker lists its active key first)."""
    for key in jwks.get("keys", []):
        if key.get("use") == "enc" and key.get("kty") == "RSA" and "kid" in key:
            return dict(key)
    raise ValueError("the JWKS has no RSA encryption key")
