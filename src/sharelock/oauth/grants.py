"""What an authorization code and an access token grant, and the rules for redeeming a code
(RFC 6749 §4.1.3, RFC 7636 §4.6): plain data and pure checks; `sharelock.flow` keeps them in
the store and decides when."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sharelock.oauth import pkce
from sharelock.oauth.errors import InvalidGrant, InvalidRequest


@dataclass(frozen=True, slots=True)
class CodeGrant:
    """What an authorization code stands for, until it is redeemed once."""

    flow_id: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    scopes: list[str]
    data_source: str | None
    login_hash: str | None
    release_expires_at: float  # the approved data waits no longer than this
    # The DPoP key bound at PAR (`dpop_jkt`, RFC 9449 §10): the token request must prove it.
    dpop_jkt: str | None = None


@dataclass(frozen=True, slots=True)
class CodeUse:
    """A redeemed code: which token it gave (its digest), and when. A later replay of the
    code revokes that token (RFC 6749 §4.1.2)."""

    token: str
    issued_at: float


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What an access token stands for, until the one delivery."""

    flow_id: str
    client_id: str
    data_source: str | None
    login_hash: str | None
    scopes: list[str]
    # The thumbprint of the DPoP key the token is bound to (`cnf.jkt`, RFC 9449 §6); None for
    # a bearer token. `/v1/share` then asks a proof by that key.
    jkt: str | None = None


@dataclass(frozen=True, slots=True, repr=False)
class TokenRequest:
    """The parameters of an authorization-code token request."""

    code: str
    redirect_uri: str
    code_verifier: str

    def __repr__(self) -> str:
        return "TokenRequest(…)"

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> TokenRequest:
        code = form.get("code", "")
        redirect_uri = form.get("redirect_uri", "")
        verifier = form.get("code_verifier", "")
        if not code or not redirect_uri:
            raise InvalidRequest("code and redirect_uri are required")
        if not verifier:
            raise InvalidRequest("code_verifier is required (PKCE)")
        return cls(code, redirect_uri, verifier)


def check_redemption(grant: CodeGrant, client_id: str, request: TokenRequest) -> None:
    """`InvalidGrant` unless this client may redeem this code with this request."""
    if grant.client_id != client_id:
        raise InvalidGrant("the code was not issued to this client")
    if grant.redirect_uri != request.redirect_uri:
        raise InvalidGrant("redirect_uri does not match the authorization request")
    if not pkce.verify(request.code_verifier, grant.code_challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")
