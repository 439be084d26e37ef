"""Authorization responses (RFC 6749 §4.1.2 and §4.1.2.1): the one place that builds the
redirect back to a partner's verified redirect URI, always with `iss` (RFC 9207) and the
partner's `state`."""

from __future__ import annotations

from urllib.parse import urlencode


def authorization_response(redirect_uri: str, issuer: str, state: str | None, **params: str) -> str:
    """`redirect_uri` with `params`, `state` (if the request had one) and `iss` added to its
    query, keeping any query it already has (RFC 6749 §3.1.2)."""
    query = dict(params)
    if state is not None:
        query["state"] = state
    query["iss"] = issuer
    separator = "&" if "?" in redirect_uri else "?"
    return redirect_uri + separator + urlencode(query)
