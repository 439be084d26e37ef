"""The OAuth 2.0 authorization-server side: request validation, PKCE, client authentication.

Public surface: `AuthorizationRequest`, `single_valued`, `validate_request` and
`require_pushed` (the authorization request);
`authenticate_client` and `ASSERTION_ALGORITHMS` (client authentication); `CodeGrant`,
`CodeUse`, `TokenGrant`, `TokenRequest` and `check_redemption` (codes and tokens);
`authorization_response` (the redirect back); `new_handle`, `digest` and `REQUEST_URI_PREFIX`
(opaque handles and their digests); DPoP (RFC 9449): `verify_dpop_proof`, `DPoPProof`,
`DPoPError`, `ProofWindow`, `NonceIssuer` and `NonceCheck` (server nonces), `jkt`,
`dpop_ath`, `one_dpop_proof`, `dpop_challenge`, `DPOP_ALGORITHMS`,
`DPOP_HEADER` and `DPOP_NONCE_HEADER`; the errors (`OAuthError` and its kinds, `UntrustedRedirect`,
`RedirectableError`); `IDENTITY_VERIFICATION_TYPE` and `DOCUMENT_TYPES` (identity verification
asked in `authorization_details`).
"""

from sharelock.oauth.authorization import AuthorizationRequest, require_pushed, single_valued
from sharelock.oauth.authorization import validate as validate_request
from sharelock.oauth.client_auth import (
    ASSERTION_ALGORITHMS,
    authenticate_client,
)
from sharelock.oauth.dpop import DPOP_ALGORITHMS, DPoPError, DPoPProof, ProofWindow, jkt
from sharelock.oauth.dpop import NONCE_HEADER as DPOP_NONCE_HEADER
from sharelock.oauth.dpop import PROOF_HEADER as DPOP_HEADER
from sharelock.oauth.dpop import ath as dpop_ath
from sharelock.oauth.dpop import challenge as dpop_challenge
from sharelock.oauth.dpop import one_proof as one_dpop_proof
from sharelock.oauth.dpop import verify_proof as verify_dpop_proof
from sharelock.oauth.dpop_nonce import NonceCheck, NonceIssuer
from sharelock.oauth.errors import (
    AccessDenied,
    InteractionRequired,
    InvalidAuthorizationDetails,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidRequestObject,
    InvalidScope,
    InvalidToken,
    OAuthError,
    RedirectableError,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    UntrustedRedirect,
)
from sharelock.oauth.grants import CodeGrant, CodeUse, TokenGrant, TokenRequest, check_redemption
from sharelock.oauth.identity_details import (
    DOCUMENT_TYPES,
    IDENTITY_SCOPE,
    IDENTITY_VERIFICATION_TYPE,
)
from sharelock.oauth.redirects import authorization_response, jarm_claims, jarm_response
from sharelock.oauth.request_object import open_request_object
from sharelock.oauth.tokens import REQUEST_URI_PREFIX, digest, new_handle

__all__ = [
    "ASSERTION_ALGORITHMS",
    "BASIC_PROFILE",
    "DOCUMENT_TYPES",
    "DPOP_ALGORITHMS",
    "DPOP_HEADER",
    "DPOP_NONCE_HEADER",
    "FAPI2_PROFILE",
    "IDENTITY_SCOPE",
    "IDENTITY_VERIFICATION_TYPE",
    "PROFILES",
    "REQUEST_URI_PREFIX",
    "AccessDenied",
    "AuthorizationRequest",
    "CodeGrant",
    "CodeUse",
    "DPoPError",
    "DPoPProof",
    "InteractionRequired",
    "InvalidAuthorizationDetails",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidRequestObject",
    "InvalidScope",
    "InvalidToken",
    "NonceCheck",
    "NonceIssuer",
    "OAuthError",
    "ProofWindow",
    "RedirectableError",
    "TokenGrant",
    "TokenRequest",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UnsupportedResponseType",
    "UnsupportedTokenType",
    "UntrustedRedirect",
    "authenticate_client",
    "authorization_response",
    "check_redemption",
    "digest",
    "dpop_ath",
    "dpop_challenge",
    "jarm_claims",
    "jarm_response",
    "jkt",
    "new_handle",
    "one_dpop_proof",
    "open_request_object",
    "require_pushed",
    "single_valued",
    "validate_request",
    "verify_dpop_proof",
]
