"""Authorization responses (RFC 6749 §4.1.2 and §4.1.2.1): the one place that builds the
redirect back to a partner's verified redirect URI, always with `iss` (RFC 9207) and the
partner's `state`; or, for JARM (`response_mode=jwt`, FAPI 2.0 Message Signing), the same
parameters as the claims of a JWT the broker signs, sent as the one parameter `response`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

# A JARM response lives as long as an authorization code would be usable from it.
JARM_LIFETIME_S = 60


def authorization_response(redirect_uri: str, issuer: str, state: str | None, **params: str) -> str:
    """`redirect_uri` with `params`, `state` (if the request had one) and `iss` added to its
    query, keeping any query it already has (RFC 6749 §3.1.2)."""
    query = dict(params)
    if state is not None:
        query["state"] = state
    query["iss"] = issuer
    separator = "&" if "?" in redirect_uri else "?"
    return redirect_uri + separator + urlencode(query)


def jarm_claims(
    issuer: str, client_id: str, state: str | None, now: float, **params: str
) -> dict[str, Any]:
    """The claims of a JARM response (JARM §2.1): `iss`, `aud` (the client), `exp`, and the
    authorization response's parameters (`code` or `error` and `error_description`,
    `state`)."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": client_id,
        "iat": int(now),
        "exp": int(now) + JARM_LIFETIME_S,
        **params,
    }
    if state is not None:
        claims["state"] = state
    return claims


def jarm_response(redirect_uri: str, signed: str) -> str:
    """`redirect_uri` with the signed response as `response` (`query.jwt`)."""
    separator = "&" if "?" in redirect_uri else "?"
    return redirect_uri + separator + urlencode({"response": signed})
