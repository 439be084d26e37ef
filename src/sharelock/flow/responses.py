"""The redirect back to a partner after its authorization request, in the mode it asked for:
a plain query (`code`, `state`, `iss`), or JARM (`response_mode=jwt`, FAPI 2.0 Message
Signing), the same parameters as a JWT signed in the HSM with the broker's ES256 key (the
`use: sig` key of the JWKS), so the partner can prove where its code or error came from."""

from __future__ import annotations

from sharelock.audit import sign_compact
from sharelock.clock import Clock
from sharelock.keys import KeyLayer
from sharelock.oauth import authorization_response, jarm_claims, jarm_response

JARM_MODE = "query.jwt"


async def authorization_redirect(
    keys: KeyLayer,
    clock: Clock,
    issuer: str,
    *,
    redirect_uri: str,
    client_id: str,
    state: str | None,
    response_mode: str,
    **params: str,
) -> str:
    """Where to send the person's browser: `redirect_uri` with the response's `params`."""
    if response_mode != JARM_MODE:
        return authorization_response(redirect_uri, issuer, state, **params)
    claims = jarm_claims(issuer, client_id, state, clock.now(), **params)
    signed = await keys.run_async(sign_compact, keys, claims, "JWT")
    return jarm_response(redirect_uri, signed)
