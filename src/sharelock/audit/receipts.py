"""Consent receipts: what was shared, with whom, when and why, signed by the broker.

A receipt is a compact JWS (ES256, the HSM signing key, `typ` `sharelock-consent-receipt`) the
person keeps; anyone can check it against the broker's JWKS with any JOSE library. It names
data categories and fields, never their values, and carries the flow's audit reference and
the login's keyed hash, so the person can later find the matching traces.

Not yet wired into the consent screen: `issue_receipt` is what the flow calls on approval.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sharelock.audit.chain import canonical_time
from sharelock.audit.jws import Signer, sign_compact, verify_compact

RECEIPT_TYP = "sharelock-consent-receipt"
LEGAL_BASIS = "consent (GDPR Art. 6(1)(a))"


def issue_receipt(
    signer: Signer,
    *,
    issuer: str,
    client_id: str,
    partner_name: str,
    purpose: str,
    data_source: str,
    shared: Mapping[str, Sequence[str]],
    flow_ref: str,
    login_hash: str | None = None,
    at: datetime | None = None,
) -> str:
    """The signed receipt of one approved share; `shared` maps scope -> fields released."""
    at = at or datetime.now(UTC)
    payload: dict[str, Any] = {
        "iss": issuer,
        "jti": secrets.token_urlsafe(16),
        "iat": int(at.timestamp()),
        "consent": {
            "given_at": canonical_time(at),
            "legal_basis": LEGAL_BASIS,
            "partner": {"client_id": client_id, "name": partner_name},
            "purpose": purpose,
            "data_source": data_source,
            "shared": {scope: list(fields) for scope, fields in shared.items()},
        },
        "trace": {"flow_ref": flow_ref, "login_hash": login_hash},
    }
    return sign_compact(signer, payload, RECEIPT_TYP)


def read_receipt(receipt: str, jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The receipt's payload if the broker's key `jwk` signed it; `BadSignature` if not."""
    return verify_compact(receipt, jwk, RECEIPT_TYP)
