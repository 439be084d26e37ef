"""The broker's signing keys: EC P-256 pairs in the token, rotated with a grace period.

One key signs at a time (ES256): audit checkpoints, consent receipts, JARM responses, signed
deliveries. A rotation makes a new pair the active one; the one before it stops signing at once
but stays published in the JWKS for the grace period (`Settings.key_grace_period`, the
encryption keys' rule), so a partner holding a delivery or a response signed just before the
rotation still finds its key. After the grace period the private half is destroyed; the
public half stays in the token for good, because checkpoints are never purged and receipts and
the trail are verified for 13 months and more. The token is what makes that history
trustworthy: whoever can rewrite the database cannot add a key to it.

Labels: `sharelock-sign-<UTC creation time>`; `sharelock-audit-sign`, the one key of earlier
releases, is the oldest when present. As for the encryption keys, every state is derived from
the labels and the clock alone, so every process agrees without another store.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sharelock.keys._token import HsmToken
from sharelock.keys.errors import AmbiguousKey

SIGN_PREFIX = "sharelock-sign-"
LEGACY_SIGN_LABEL = "sharelock-audit-sign"
SIGN_ALG = "ES256"
TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
# The legacy key carries no creation time in its label; it sorts before every dated one.
_LEGACY_CREATED = datetime(1970, 1, 1, tzinfo=UTC)

SigningStatus = Literal["active", "retiring", "retired"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def p256_jwk(point: bytes) -> dict[str, Any]:
    """The public JWK of an uncompressed P-256 point, `kid` its RFC 7638 thumbprint."""
    if len(point) != 65 or point[0] != 4:
        raise AmbiguousKey("a signing key is not an uncompressed P-256 point")
    bare = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(point[1:33]),  # full 32 bytes each (RFC 7518 §6.2.1.2)
        "y": _b64url(point[33:]),
    }
    members = json.dumps(bare, sort_keys=True, separators=(",", ":")).encode("ascii")
    kid = _b64url(hashlib.sha256(members).digest())
    return {**bare, "kid": kid, "use": "sig", "alg": SIGN_ALG}


def signing_status(retired_at: datetime | None, grace: timedelta, now: datetime) -> SigningStatus:
    if retired_at is None:
        return "active"
    return "retiring" if now < retired_at + grace else "retired"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """Public facts of one signing pair."""

    label: str
    created_at: datetime
    retired_at: datetime | None
    status: SigningStatus
    has_private: bool
    jwk: dict[str, Any]

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    @property
    def published(self) -> bool:
        """In `/.well-known/jwks.json`: the active key and those in their grace period."""
        return self.status != "retired"

    def private_until(self, grace: timedelta) -> datetime | None:
        return None if self.retired_at is None else self.retired_at + grace


def new_label(now: datetime) -> str:
    return SIGN_PREFIX + now.strftime(TIME_FORMAT)


def _created(label: str) -> datetime:
    if label == LEGACY_SIGN_LABEL:
        return _LEGACY_CREATED
    return datetime.strptime(label[len(SIGN_PREFIX) :], TIME_FORMAT).replace(tzinfo=UTC)


def load_signing_keys(token: HsmToken, grace: timedelta, now: datetime) -> list[SigningKey]:
    """Every signing key in the token, oldest first; the newest is the active one."""
    objects = [
        o
        for o in token.list_objects("sharelock-")
        if o.label == LEGACY_SIGN_LABEL or o.label.startswith(SIGN_PREFIX)
    ]
    labels = sorted({o.label for o in objects}, key=_created)
    keys: list[SigningKey] = []
    for index, label in enumerate(labels):
        kinds = [o.object_class for o in objects if o.label == label]
        if kinds.count("public") != 1 or kinds.count("private") > 1:
            raise AmbiguousKey(
                f"signing key {label!r} has {kinds.count('private')} private and "
                f"{kinds.count('public')} public objects; expected one public, at most one private"
            )
        retired_at = _created(labels[index + 1]) if index + 1 < len(labels) else None
        keys.append(
            SigningKey(
                label=label,
                created_at=_created(label),
                retired_at=retired_at,
                status=signing_status(retired_at, grace, now),
                has_private="private" in kinds,
                jwk=p256_jwk(token.ec_public_point(label)),
            )
        )
    if len({k.kid for k in keys}) != len(keys):
        raise AmbiguousKey("two signing keys in the token share a kid")
    if keys and not keys[-1].has_private:
        raise AmbiguousKey(f"the newest signing key {keys[-1].label!r} has no private half")
    return keys
