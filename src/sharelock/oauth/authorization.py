"""Validation of authorization requests (RFC 6749 §4.1.1, RFC 7636, RFC 9126).

The order of checks matters: until the client and its redirect URI are verified, an error is
shown at the broker (`UntrustedRedirect`); after that, errors go back to the client
(`RedirectableError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from sharelock.checks import (
    CheckRequest,
    InvalidCheckRequest,
    parse_authorization_details,
    request_entry,
    required_scopes,
)
from sharelock.oauth import pkce
from sharelock.oauth.errors import (
    InteractionRequired,
    InvalidAuthorizationDetails,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    RedirectableError,
    UnsupportedResponseType,
    UntrustedRedirect,
)
from sharelock.oauth.identity_details import IDENTITY_SCOPE, split_details
from sharelock.scopes import SCOPES

MAX_STATE_LENGTH = 512
# Names echoed in the "repeated" error: any other name came from the request, and an error
# description is never an echo of the request.
_KNOWN_PARAMETERS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "request_uri",
        "prompt",
        "nonce",
        "grant_type",
        "code",
        "code_verifier",
        "client_assertion",
        "client_assertion_type",
        "client_secret",
        "access_token",
        "response_mode",
        "dpop_jkt",
        "authorization_details",
    }
)
# JARM (FAPI 2.0 Message Signing): `jwt` is `query.jwt` for the code flow. The fragment and
# form_post modes are not offered: the partner's redirect URI reads its query.
RESPONSE_MODES = {"query": "query", "jwt": "query.jwt", "query.jwt": "query.jwt"}
PAR_REQUIRED = (
    "This service must first send its request to Sharelock as a pushed authorization request "
    "(PAR, RFC 9126) and then open /authorize with the request_uri it received. Plain "
    "authorization requests are not accepted."
)


class KnownPartner(Protocol):
    @property
    def client_id(self) -> str: ...
    @property
    def redirect_uris(self) -> Sequence[str]: ...
    @property
    def scopes(self) -> Sequence[str]: ...


class MaybeParExempt(Protocol):
    @property
    def par_exempt(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str
    response_mode: str = "query"  # or "query.jwt": the response is a JWT signed by the broker
    dpop_jkt: str | None = None  # the DPoP key bound at PAR (RFC 9449 §10)
    # Verify-don't-reveal checks (RFC 9396 `authorization_details`, `sharelock.checks`), as
    # canonical entries; they hold what the partner typed (a name, an IBAN), so the request
    # lives only in sealed records. `check_scopes`: what the source must give to answer them.
    checks: tuple[dict[str, Any], ...] = ()
    check_scopes: tuple[str, ...] = ()
    # Identity verification (`oauth.identity_details`): its canonical entry, or None. When
    # asked, `identity` is among `check_scopes`: the document is compared with its values.
    identity_verification: dict[str, Any] | None = None
    # The id of the flow this request will start, drawn when it is pushed (PAR), so that
    # the partner learns the flow's audit reference at once (`flow_ref` in the PAR answer).
    flow_id: str | None = None

    @property
    def collect_scopes(self) -> tuple[str, ...]:
        """What the data source must give: the scopes asked, then those only checks need
        (their values answer the checks and are dropped at once, never shown or sent)."""
        return self.scopes + tuple(s for s in self.check_scopes if s not in self.scopes)

    def __repr__(self) -> str:
        return (
            f"AuthorizationRequest(client_id={self.client_id!r}, scopes={self.scopes!r}, "
            f"checks={len(self.checks)}, "
            f"identity_verification={self.identity_verification is not None})"
        )

    def to_json(self) -> dict[str, Any]:
        value = asdict(self)
        value["checks"] = list(self.checks)
        return value

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> AuthorizationRequest:
        return cls(
            client_id=str(value["client_id"]),
            redirect_uri=str(value["redirect_uri"]),
            scopes=tuple(value["scopes"]),
            state=value["state"],
            code_challenge=str(value["code_challenge"]),
            response_mode=str(value.get("response_mode", "query")),
            dpop_jkt=value.get("dpop_jkt"),
            checks=tuple(value.get("checks", ())),
            check_scopes=tuple(value.get("check_scopes", ())),
            identity_verification=value.get("identity_verification"),
            flow_id=value.get("flow_id"),
        )


def single_valued(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Parameters as a dict; any repeated parameter is an error (RFC 6749 §3.1: "request and
    response parameters MUST NOT be included more than once"). Not only the OAuth names: which
    copy a proxy, a framework or the broker would read is exactly what an attacker plays on."""
    params: dict[str, str] = {}
    for name, value in items:
        if name in params:
            shown = name if name in _KNOWN_PARAMETERS else "a parameter"
            raise InvalidRequest(f"{shown} is repeated")
        params[name] = value
    return params


def require_pushed(partner: MaybeParExempt | None) -> None:
    """PAR is required (FAPI 2.0, RFC 9126 `require_pushed_authorization_requests`): a plain
    authorization request is accepted only from a partner the operator registered as an
    exception. The refusal is shown at the broker (`UntrustedRedirect`): nothing in a plain
    request was sent by an authenticated partner, so nothing in it may steer a redirect."""
    if partner is not None and not partner.par_exempt:
        raise UntrustedRedirect(PAR_REQUIRED)


def verify_client_redirect(params: Mapping[str, str], partner: KnownPartner | None) -> str:
    """The redirect URI, once client and URI are known to match exactly (no normalisation:
    RFC 9700 §4.1.3)."""
    if partner is None:
        raise UntrustedRedirect("unknown client")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise UntrustedRedirect("redirect_uri is required")
    if redirect_uri not in partner.redirect_uris:
        raise UntrustedRedirect("redirect_uri is not registered for this client")
    return redirect_uri


@dataclass(frozen=True, slots=True)
class _Details:
    checks: tuple[dict[str, Any], ...] = ()
    check_scopes: tuple[str, ...] = ()
    identity_verification: dict[str, Any] | None = None


def _checks(params: Mapping[str, str], partner: KnownPartner) -> _Details:
    """The checks asked in `authorization_details`, as canonical entries, the scopes their
    answers need (each must be one this client may ask), and identity verification if asked."""
    raw = params.get("authorization_details")
    if raw is None:
        return _Details()
    identity, others = split_details(raw)
    requests: tuple[CheckRequest, ...] = ()
    if others or identity is None:
        try:
            requests = parse_authorization_details(others)
        except InvalidCheckRequest as exc:
            raise InvalidAuthorizationDetails(str(exc)) from None
    needed = required_scopes(requests)
    if identity is not None and IDENTITY_SCOPE not in needed:
        needed = (*needed, IDENTITY_SCOPE)
    if any(scope not in partner.scopes for scope in needed):
        raise InvalidAuthorizationDetails("a check needs a scope not allowed for this client")
    return _Details(tuple(request_entry(request) for request in requests), needed, identity)


def _check(params: Mapping[str, str], partner: KnownPartner) -> tuple[tuple[str, ...], str]:
    if params.get("response_type") != "code":
        raise UnsupportedResponseType("response_type must be code")
    challenge = params.get("code_challenge")
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE)")
    if params.get("code_challenge_method") != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not pkce.valid_challenge(challenge):
        raise InvalidRequest("code_challenge must be 43 base64url characters")
    requested = tuple(dict.fromkeys(params.get("scope", "").split()))
    if not requested and "authorization_details" not in params:
        raise InvalidScope("scope is required (or authorization_details with checks)")
    if any(scope not in SCOPES for scope in requested):
        raise InvalidScope("unknown scope requested")
    if any(scope not in partner.scopes for scope in requested):
        raise InvalidScope("scope not allowed for this client")
    if params.get("prompt") == "none":
        # The user must always see and approve what is shared.
        raise InteractionRequired("the user must see and approve every share")
    return requested, challenge


def validate(params: Mapping[str, str], partner: KnownPartner | None) -> AuthorizationRequest:
    """A complete authorization request, or `UntrustedRedirect` / `RedirectableError`."""
    redirect_uri = verify_client_redirect(params, partner)
    assert partner is not None  # verify_client_redirect guarantees it
    state = params.get("state")
    mode = RESPONSE_MODES.get(params.get("response_mode") or "query")
    if mode is None:
        raise RedirectableError(
            InvalidRequest("response_mode must be query, jwt or query.jwt"), redirect_uri, state
        )
    if state is not None and len(state) > MAX_STATE_LENGTH:
        state = None  # not echoed back: an oversized state is part of the error
        raise RedirectableError(InvalidRequest("state is too long"), redirect_uri, state, mode)
    try:
        scopes, challenge = _check(params, partner)
        details = _checks(params, partner)
    except OAuthError as exc:
        raise RedirectableError(exc, redirect_uri, state, mode) from None
    return AuthorizationRequest(
        partner.client_id,
        redirect_uri,
        scopes,
        state,
        challenge,
        mode,
        checks=details.checks,
        check_scopes=details.check_scopes,
        identity_verification=details.identity_verification,
    )
