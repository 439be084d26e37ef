"""Consent receipts: what was shared, with whom, when and why, signed by the broker.

A receipt is a compact JWS (ES256, the HSM signing key, `typ` `sharelock-consent-receipt`) the
person keeps; anyone can check it against the broker's JWKS with any JOSE library. It names
data categories and fields, never their values, and carries the flow's audit reference and
the login's keyed hash, so the person can later find the matching traces.

`ConsentService.decide` issues one on approval (the screen offers it for download);
`verify_receipt` is what the rights API (`/api/rights/…`) checks before it answers: the
broker's signature, its issuer, and an age within the audit retention (`exp`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sharelock.audit.chain import canonical_time
from sharelock.audit.errors import AuditError
from sharelock.audit.events import CLIENT_ID, DATA_SOURCE, LOGIN_HASH, REFERENCE
from sharelock.audit.jws import BadSignature, Signer, sign_compact, verify_compact

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
    valid_for: timedelta | None = None,
) -> str:
    """The signed receipt of one approved share; `shared` maps scope -> field names released
    (names only: a receipt never holds a value). `valid_for` sets `exp`: the broker uses its
    audit retention, after which the traces the receipt points to are gone anyway."""
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
    if valid_for is not None:
        payload["exp"] = int((at + valid_for).timestamp())
    return sign_compact(signer, payload, RECEIPT_TYP)


def read_receipt(receipt: str, jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The receipt's payload if the broker's key `jwk` (or one of a keyring kid -> JWK)
    signed it; `BadSignature` if not."""
    return verify_compact(receipt, jwk, RECEIPT_TYP)


# A receipt is small (a few hundred bytes); anything much longer is not one.
MAX_RECEIPT_LENGTH = 8192
CLOCK_SKEW = timedelta(minutes=5)


class InvalidReceipt(AuditError):
    """Not a receipt this broker signed, from another issuer, expired, or malformed. One
    error for every case: the answer never says which check failed."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A verified receipt's claims, as the rights API uses them."""

    receipt_id: str
    issued_at: datetime
    expires_at: datetime
    client_id: str
    partner_name: str
    data_source: str
    flow_ref: str
    login_hash: str | None
    consent: Mapping[str, Any]


def verify_receipt(
    receipt: str,
    jwk: Mapping[str, Any],
    *,
    issuer: str,
    max_age: timedelta,
    now: datetime | None = None,
) -> Receipt:
    """The receipt's claims if the broker's key `jwk` signed it for `issuer`, it was issued
    no later than now (give or take `CLOCK_SKEW`) and it is still within `exp`, or within
    `max_age` of its issue when it has no `exp`; `InvalidReceipt` otherwise."""
    now = now or datetime.now(UTC)
    if not isinstance(receipt, str) or not 0 < len(receipt) <= MAX_RECEIPT_LENGTH:
        raise InvalidReceipt("not a receipt")
    try:
        payload = read_receipt(receipt.strip(), jwk)
    except BadSignature:
        raise InvalidReceipt("not signed by this broker") from None
    try:
        return _claims(payload, issuer=issuer, max_age=max_age, now=now)
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError, OSError):
        raise InvalidReceipt("malformed receipt") from None


def _claims(
    payload: Mapping[str, Any], *, issuer: str, max_age: timedelta, now: datetime
) -> Receipt:
    if payload["iss"] != issuer:
        raise InvalidReceipt("issued by another broker")
    issued = datetime.fromtimestamp(_integer(payload["iat"]), UTC)
    if "exp" in payload:
        expires = datetime.fromtimestamp(_integer(payload["exp"]), UTC)
    else:
        expires = issued + max_age
    expires = min(expires, issued + max_age)
    if issued > now + CLOCK_SKEW or now >= expires:
        raise InvalidReceipt("expired or not yet valid")
    consent = payload["consent"]
    trace = payload["trace"]
    partner = consent["partner"]
    login_hash = trace.get("login_hash")
    checks = (
        (partner["client_id"], CLIENT_ID),
        (consent["data_source"], DATA_SOURCE),
        (trace["flow_ref"], REFERENCE),
        (payload["jti"], REFERENCE),
    )
    for value, pattern in checks:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError("malformed claim")
    if login_hash is not None and not (
        isinstance(login_hash, str) and LOGIN_HASH.fullmatch(login_hash)
    ):
        raise ValueError("malformed login hash")
    if not isinstance(partner["name"], str) or not isinstance(consent["shared"], dict):
        raise ValueError("malformed claim")
    return Receipt(
        receipt_id=payload["jti"],
        issued_at=issued,
        expires_at=expires,
        client_id=partner["client_id"],
        partner_name=partner["name"],
        data_source=consent["data_source"],
        flow_ref=trace["flow_ref"],
        login_hash=login_hash,
        consent=dict(consent),
    )


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value
