"""OAuth errors (RFC 6749 §4.1.2.1, §5.2) as typed exceptions.

`error_description` values are fixed strings written here or by the caller from fixed text:
never an echo of the request, which could carry anything.
"""

from __future__ import annotations

from sharelock.errors import SharelockError


class OAuthError(SharelockError):
    error = "invalid_request"
    status = 400

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InteractionRequired(OAuthError):
    error = "interaction_required"


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidRequestObject(OAuthError):
    """RFC 9101 §6.3: the request object is not signed as required, or its claims are wrong."""

    error = "invalid_request_object"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status = 401

    def __init__(self, description: str, method: str | None = None) -> None:
        super().__init__(description)
        # The authentication method the client tried (`authenticate_client` sets it), so the
        # answer carries the challenge of that method (RFC 6749 §5.2).
        self.method = method

    @property
    def basic_challenge(self) -> bool:
        """`WWW-Authenticate: Basic` fits a client that used HTTP Basic, or no method at all
        (Basic is one it may use); not one that authenticated in the body."""
        return self.method in (None, "client_secret_basic")


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidAuthorizationDetails(OAuthError):
    """RFC 9396 §5: `authorization_details` is malformed, of an unknown type, or asks what
    this client may not ask. The description never quotes a value the partner sent."""

    error = "invalid_authorization_details"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedTokenType(OAuthError):
    """RFC 7009 §2.2.1: a revocation for a kind of token the server does not revoke."""

    error = "unsupported_token_type"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class InvalidToken(OAuthError):
    """RFC 6750 §3.1, for the bearer-protected `GET /v1/share` and the auditor API."""

    error = "invalid_token"
    status = 401

    def __init__(
        self, description: str, *, credentials: bool = True, scheme: str = "Bearer"
    ) -> None:
        super().__init__(description)
        # False when the request carried no credentials at all: its challenge then names no
        # error code (RFC 6750 §3.1), the client simply did not know it had to authenticate.
        self.credentials = credentials
        # The challenge's scheme: `DPoP` for a DPoP-bound token (RFC 9449 §7.1).
        self.scheme = scheme


class UntrustedRedirect(SharelockError):
    """The client is unknown or the redirect URI is not registered: the error is shown at the
    broker, never sent by redirect (RFC 6749 §4.1.2.1, RFC 9700 §4.11.2)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class RedirectableError(SharelockError):
    """An authorization error to send back to the client's verified redirect URI."""

    def __init__(
        self,
        cause: OAuthError,
        redirect_uri: str,
        state: str | None,
        response_mode: str = "query",
    ) -> None:
        super().__init__(cause.description)
        self.cause = cause
        self.redirect_uri = redirect_uri
        self.state = state
        self.response_mode = response_mode  # "query", or "query.jwt" (JARM)
