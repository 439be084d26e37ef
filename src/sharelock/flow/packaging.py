"""What `/v1/share` sends, in the partner's registered format (`Partner.delivery_format`):

- `json`: the delivery as a JSON object (the broker's original answer);
- `jws`: a JWT signed ES256 in the HSM with the JWKS's `use: sig` key (`application/jwt`), so
  the partner can prove to anyone what it received, from whom and when;
- `jwe`: that JWT encrypted to the partner's `use: enc` key (ECDH-ES for P-256, RSA-OAEP-256
  for RSA; A256GCM; `cty: JWT`), so that only the partner reads it, even behind a proxy that
  terminates TLS.

The signed payload follows OpenID Connect for Identity Assurance: `verified_claims` with
`verification` (the trust framework, when the data source was read, and the evidence, an
`electronic_record` naming the data source) and `claims` (the approved data, by scope), beside
`iss`, `aud`, `iat`, `jti` and the delivery's own fields. Packaging happens before the
delivery's audit row: if the HSM cannot sign, nothing is released and the partner retries.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc import jwe
from joserfc.jwk import ECKey, RSAKey

from sharelock.audit import sign_compact
from sharelock.errors import ServiceUnavailable
from sharelock.keys import KeyLayer
from sharelock.registry import Partner, encryption_key

JSON = "application/json"
JWT = "application/jwt"
TRUST_FRAMEWORK = "sharelock_data_source"
# Key type -> key-management algorithm (FAPI 2.0 and JARM's lists; no RSA1_5, no "dir").
_KEY_MANAGEMENT = {"EC": "ECDH-ES", "RSA": "RSA-OAEP-256"}


@dataclass(frozen=True)
class Packaged:
    """The answer's body (a JSON object, or a compact JWS or JWE) and its media type."""

    body: dict[str, Any] | str
    media_type: str


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def signed_claims(
    delivery: dict[str, Any], issuer: str, now: float, collected_at: float | None
) -> dict[str, Any]:
    """The JWT claims of a delivery, in the shape of OpenID Connect for Identity Assurance."""
    read_at = _iso(collected_at if collected_at is not None else now)
    return {
        "iss": issuer,
        "aud": delivery["client_id"],
        "iat": int(now),
        "jti": secrets.token_urlsafe(16),
        "data_source": delivery["data_source"],
        "scopes": delivery["scopes"],
        "delivered_at": delivery["delivered_at"],
        "verified_claims": {
            "verification": {
                "trust_framework": TRUST_FRAMEWORK,
                "time": read_at,
                "evidence": [
                    {
                        "type": "electronic_record",
                        "record": {
                            "type": "data_source_account",
                            "source": {"name": delivery["data_source"]},
                        },
                        "time": read_at,
                    },
                    *_identity_evidence(delivery),
                ],
            },
            "claims": _claims(delivery),
        },
    }


def _identity_evidence(delivery: dict[str, Any]) -> list[dict[str, Any]]:
    """The identity verification's `document` evidence (docs/identity-verification.md), if
    it ran; a declined one is said in `claims`, not as evidence."""
    verification = delivery.get("identity_verification")
    if not isinstance(verification, dict) or verification.get("type") != "document":
        return []
    return [verification]


def _claims(delivery: dict[str, Any]) -> dict[str, Any]:
    """The approved data by scope, and the checks' answers (`checks`) when there are some:
    the same source, read at the same time, is the evidence of both."""
    claims = dict(delivery["data"])
    if "checks" in delivery:
        claims["checks"] = delivery["checks"]
    if delivery.get("identity_verification", {}).get("declined"):
        claims["identity_verification"] = {"declined": True}
    return claims


def encrypt_to(partner: Partner, plaintext: str) -> str:
    """`plaintext` (a JWS) in a compact JWE for the partner's `use: enc` key."""
    public = encryption_key(partner.jwks)
    if public is None:  # the registry refuses `jwe` without one; the JWKS may have changed
        raise ServiceUnavailable("the partner has no encryption key")
    key = ECKey.import_key(public) if public["kty"] == "EC" else RSAKey.import_key(public)
    alg = _KEY_MANAGEMENT[public["kty"]]
    header: dict[str, Any] = {"alg": alg, "enc": "A256GCM", "cty": "JWT"}
    if "kid" in public:
        header["kid"] = public["kid"]
    return jwe.encrypt_compact(header, plaintext, key, algorithms=[alg, "A256GCM"])


async def package(
    delivery: dict[str, Any],
    partner: Partner | None,
    keys: KeyLayer,
    issuer: str,
    now: float,
    collected_at: float | None,
) -> Packaged:
    """The answer to send for `delivery` (see the module's docstring)."""
    form = partner.delivery_format if partner is not None else "json"
    if form == "json" or partner is None:
        return Packaged(delivery, JSON)
    claims = signed_claims(delivery, issuer, now, collected_at)
    signed = await keys.run_async(sign_compact, keys, claims, "JWT")
    if form == "jws":
        return Packaged(signed, JWT)
    return Packaged(encrypt_to(partner, signed), JWT)
