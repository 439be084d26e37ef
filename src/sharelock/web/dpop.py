"""DPoP (RFC 9449) at the partner's endpoints: the request's proof verified with the broker's
clock, its jti remembered in Redis, and the server nonce when the broker requires nonces.
The checks themselves are `sharelock.oauth.dpop`'s; this module only takes them to HTTP."""

from __future__ import annotations

import re

from fastapi import Request

from sharelock.oauth import (
    DPOP_HEADER,
    DPOP_NONCE_HEADER,
    DPoPError,
    DPoPProof,
    InvalidRequest,
    one_dpop_proof,
    verify_dpop_proof,
)
from sharelock.web.deps import Broker

# A JWK SHA-256 thumbprint, base64url without padding (RFC 7638, RFC 9449 §10).
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")


async def request_proof(
    broker: Broker, request: Request, method: str, path: str, access_token: str | None = None
) -> DPoPProof | None:
    """The request's verified DPoP proof, None if it sent none; `DPoPError` if it is wrong.
    The URL is the issuer's (what the client addressed), never the one a proxy passed on."""
    proof = one_dpop_proof(request.headers.getlist(DPOP_HEADER))
    if proof is None:
        return None
    return await verify_dpop_proof(
        proof,
        method=method,
        url=broker.settings.issuer + path,
        now=broker.clock.now(),
        nonce=broker.dpop_nonces,
        remember_jti=broker.remember_dpop_jti,
        access_token=access_token,
    )


def require(proof: DPoPProof | None, why: str) -> DPoPProof:
    if proof is None:
        raise DPoPError("missing", why)
    return proof


def bound_key(proof: DPoPProof | None, dpop_jkt: str | None) -> str | None:
    """The key a pushed request binds its code to (RFC 9449 §10): the proof's, or the
    `dpop_jkt` parameter's; both must then name the same key."""
    if dpop_jkt is not None and not _JKT.fullmatch(dpop_jkt):
        raise InvalidRequest("dpop_jkt must be a base64url SHA-256 JWK thumbprint")
    if proof is not None and dpop_jkt is not None and proof.jkt != dpop_jkt:
        raise DPoPError("binding", "dpop_jkt is not the thumbprint of the DPoP proof's key")
    return proof.jkt if proof is not None else dpop_jkt


def nonce_headers(broker: Broker) -> dict[str, str]:
    """A fresh nonce on every answer when nonces are required (RFC 9449 §8.2), so that a
    client always holds one."""
    if broker.dpop_nonces is None:
        return {}
    return {DPOP_NONCE_HEADER: broker.dpop_nonces.issue(broker.clock.now())}
