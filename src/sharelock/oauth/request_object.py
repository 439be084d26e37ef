"""Signed request objects (JAR, RFC 9101) pushed at PAR, as FAPI 2.0 Message Signing wants:
the authorization request's parameters as the claims of a JWT the partner signs with a key of
its registered JWKS, so that the request itself proves who made it and was not altered.

Only what the object holds counts (RFC 9101 §6.3: parameters beside it are ignored, apart from
client authentication). Checks: a compact JWS (no `none`, no encryption), an algorithm of the
same allow-list as client assertions (PS256, ES256, EdDSA or Ed25519), the partner's key; `iss` and
`client_id` the partner, `aud` the issuer; `exp` and `nbf` present, the object valid now, and
living 60 minutes at most (FAPI 2.0 Message Signing §5.3.1). Parameters must be strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from sharelock.oauth.client_auth import (
    ASSERTION_ALGORITHMS,
    MAX_CLOCK_SKEW_S,
    AuthenticatedPartner,
    decode_signed,
)
from sharelock.oauth.client_auth import is_number as _number
from sharelock.oauth.errors import InvalidRequestObject

MAX_LIFETIME_S = 3600
MAX_LENGTH = 16_384
TYPES = (None, "oauth-authz-req+jwt", "JWT")
# Claims about the object itself, not parameters of the authorization request.
_ENVELOPE = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})


def _header(request_object: str) -> Mapping[str, Any]:
    try:
        header = jws.extract_compact(request_object.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeEncodeError):
        raise InvalidRequestObject("the request object is not a compact JWS") from None
    return header


def open_request_object(
    request_object: str, partner: AuthenticatedPartner, issuer: str, now: float
) -> dict[str, str]:
    """The authorization parameters of a verified request object of `partner`."""
    if len(request_object) > MAX_LENGTH or request_object.count(".") != 2:
        raise InvalidRequestObject("the request object must be a compact JWS of 16 KiB at most")
    header = _header(request_object)
    if header.get("typ") not in TYPES:
        raise InvalidRequestObject("the request object's typ must be oauth-authz-req+jwt")
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise InvalidRequestObject(
            "the request object must be signed with PS256, ES256 or EdDSA (Ed25519)"
        )
    if not partner.jwks:
        raise InvalidRequestObject("no public key is registered to verify request objects")
    try:
        token = decode_signed(request_object, partner.jwks)
    except (JoseError, ValueError):
        raise InvalidRequestObject("the request object's signature is invalid") from None
    claims = token.claims
    _check(claims, partner.client_id, issuer, now)
    params: dict[str, str] = {}
    for name, value in claims.items():
        if name in _ENVELOPE:
            continue
        if name == "authorization_details" and isinstance(value, list):
            params[name] = json.dumps(value)  # RFC 9396 §3: an array in a request object
            continue
        if not isinstance(value, str):
            shown = name if len(name) <= 40 and name.isidentifier() else "a parameter"
            raise InvalidRequestObject(f"{shown} must be a string in the request object")
        params[name] = value
    return params


def _check(claims: Mapping[str, Any], client_id: str, issuer: str, now: float) -> None:
    if claims.get("iss") != client_id or claims.get("client_id") != client_id:
        raise InvalidRequestObject("the request object's iss and client_id must be the client")
    audience = claims.get("aud")
    if audience != issuer and not (isinstance(audience, list) and audience == [issuer]):
        raise InvalidRequestObject("the request object's aud must be the issuer identifier")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not (_number(exp) and _number(nbf)):
        raise InvalidRequestObject("the request object needs exp and nbf")
    if exp <= now:
        raise InvalidRequestObject("the request object has expired")
    if nbf > now + MAX_CLOCK_SKEW_S:
        raise InvalidRequestObject("the request object is not valid yet")
    if exp - nbf > MAX_LIFETIME_S:
        raise InvalidRequestObject("the request object may live 60 minutes at most")
