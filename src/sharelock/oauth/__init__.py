"""The OAuth 2.0 authorization-server side: request validation, PKCE, client authentication.

Public surface: `AuthorizationRequest`, `single_valued`, `validate_request` and
`require_pushed` (the authorization request);
`authenticate_client` and `ASSERTION_ALGORITHMS` (client authentication); `CodeGrant`,
`CodeUse`, `TokenGrant`, `TokenRequest` and `check_redemption` (codes and tokens);
`authorization_response` (the redirect back); `new_handle`, `digest` and `REQUEST_URI_PREFIX`
(opaque handles and their digests); the errors (`OAuthError` and its kinds, `UntrustedRedirect`,
`RedirectableError`).
"""

from sharelock.oauth.authorization import AuthorizationRequest, require_pushed, single_valued
from sharelock.oauth.authorization import validate as validate_request
from sharelock.oauth.client_auth import ASSERTION_ALGORITHMS, authenticate_client
from sharelock.oauth.errors import (
    AccessDenied,
    InteractionRequired,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
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
from sharelock.oauth.redirects import authorization_response
from sharelock.oauth.tokens import REQUEST_URI_PREFIX, digest, new_handle

__all__ = [
    "ASSERTION_ALGORITHMS",
    "REQUEST_URI_PREFIX",
    "AccessDenied",
    "AuthorizationRequest",
    "CodeGrant",
    "CodeUse",
    "InteractionRequired",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidToken",
    "OAuthError",
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
    "new_handle",
    "require_pushed",
    "single_valued",
    "validate_request",
]
