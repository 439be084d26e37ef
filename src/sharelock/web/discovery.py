"""Discovery: RFC 8414 authorization-server metadata and the JWKS.

The metadata names only what the broker does today: a member that announces a feature makes
certified clients (oauth4webapi, openid-client, Authlib) rely on it. `service_documentation`
is the operator's `SHARELOCK_SERVICE_DOCUMENTATION`, left out when unset.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sharelock.checks import CHECK_TYPE
from sharelock.envelope import ALLOWED_ENC
from sharelock.oauth import ASSERTION_ALGORITHMS, DPOP_ALGORITHMS, IDENTITY_VERIFICATION_TYPE
from sharelock.scopes import SCOPES
from sharelock.web.deps import broker_of

router = APIRouter()

# Client authentication (`sharelock.oauth.client_auth`), the same at /token, /par and /revoke.
AUTH_METHODS = ("client_secret_basic", "private_key_jwt")


# RFC 8414 §3's location, and OpenID Connect Discovery's, which openid-client and other
# OIDC-first libraries ask for by default (openid-client without `algorithm: 'oauth2'`).
# The same document at both: the broker is an OAuth 2.0 server, not an OpenID Provider (no ID
# token), so OIDC-only members such as `subject_types_supported` are absent from both.
@router.get("/.well-known/oauth-authorization-server")
@router.get("/.well-known/openid-configuration")
async def metadata(request: Request) -> dict[str, Any]:
    broker = broker_of(request)
    issuer = broker.settings.issuer
    algs = await broker.keys.run_async(broker.keys.algorithms)
    meta: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        # RFC 7009, authenticated as at the token endpoint (RFC 8414 §2).
        "revocation_endpoint": f"{issuer}/revoke",
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        # RFC 9126 §5: a plain authorization request is refused (unless the operator made
        # the partner an exception, which a client cannot learn from here).
        "require_pushed_authorization_requests": True,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "scopes_supported": list(SCOPES),
        # RFC 9396 §10: verify-don't-reveal checks (docs/checks.md), answered instead of data.
        # and identity verification (docs/identity-verification.md, "In a share").
        "authorization_details_types_supported": [CHECK_TYPE, IDENTITY_VERIFICATION_TYPE],
        "response_types_supported": ["code"],
        # JARM (FAPI 2.0 Message Signing): `jwt` is `query.jwt` for the code flow, signed in
        # the HSM with the `use: sig` key of the JWKS (`sharelock.flow.responses`).
        "response_modes_supported": ["query", "jwt", "query.jwt"],
        "authorization_signing_alg_values_supported": ["ES256"],
        # DPoP (RFC 9449) at /par (`dpop_jkt`), /token and /v1/share (`sharelock.web.dpop`).
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
        # JAR at PAR (RFC 9101, FAPI 2.0 Message Signing); required per partner
        # (`partners add --require-signed-requests`), so not for every client here.
        "request_object_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "require_signed_request_object": False,
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        # FAPI 2.0 §5.4.1 (PS256, ES256, EdDSA): the very list client_auth verifies with,
        # so what is announced and what is accepted cannot differ. No RS256.
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "authorization_response_iss_parameter_supported": True,
        "credential_encryption_alg_values_supported": list(algs),
        "credential_encryption_enc_values_supported": [ALLOWED_ENC],
    }
    if broker.settings.service_documentation:
        meta["service_documentation"] = broker.settings.service_documentation
    return meta


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> dict[str, Any]:
    broker = broker_of(request)
    return await broker.keys.run_async(broker.keys.published_jwks)
