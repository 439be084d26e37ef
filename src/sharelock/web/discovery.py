"""Discovery: RFC 8414 authorization-server metadata and the JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sharelock.envelope import ALLOWED_ENC
from sharelock.oauth import ASSERTION_ALGORITHMS
from sharelock.scopes import SCOPES
from sharelock.web.deps import broker_of

router = APIRouter()


@router.get("/.well-known/oauth-authorization-server")
async def metadata(request: Request) -> dict[str, Any]:
    broker = broker_of(request)
    issuer = broker.settings.issuer
    algs = await broker.keys.run_async(broker.keys.algorithms)
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        # RFC 9126 §5: a plain authorization request is refused (unless the operator made
        # the partner an exception, which a client cannot learn from here).
        "require_pushed_authorization_requests": True,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "authorization_response_iss_parameter_supported": True,
        "credential_encryption_alg_values_supported": list(algs),
        "credential_encryption_enc_values_supported": [ALLOWED_ENC],
    }


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> dict[str, Any]:
    broker = broker_of(request)
    return await broker.keys.run_async(broker.keys.published_jwks)
