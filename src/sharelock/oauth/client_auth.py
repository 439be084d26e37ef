"""Client authentication at the token and PAR endpoints: `client_secret_basic` (RFC 6749
§2.3.1) and `private_key_jwt` (RFC 7523 §2.2, with the checks of RFC 9700 and FAPI 2.0)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import unquote

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from sharelock.oauth.errors import InvalidClient, InvalidRequest

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS256", "PS256", "ES256")
MAX_CLOCK_SKEW_S = 60
MAX_ASSERTION_LIFETIME_S = 300


class AuthenticatedPartner(Protocol):
    @property
    def client_id(self) -> str: ...
    @property
    def jwks(self) -> Mapping[str, Any] | None: ...


class PartnerDirectory(Protocol):
    async def get(self, client_id: str) -> AuthenticatedPartner | None: ...
    async def authenticate(self, client_id: str, secret: str) -> AuthenticatedPartner | None: ...


# Remembers a jti until its expiry; False when it was already seen (replay).
RememberOnce = Callable[[str, float], Awaitable[bool]]


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise InvalidClient("unsupported client authentication scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise InvalidClient("malformed Basic credentials")
    return unquote(client_id), unquote(secret)


def _assertion_issuer(assertion: str) -> str:
    """The unverified `iss`, only to find whose keys verify the signature."""
    try:
        claims = json.loads(jws.extract_compact(assertion.encode("ascii")).payload)
        issuer = claims["iss"]
    except (JoseError, ValueError, KeyError, TypeError, UnicodeEncodeError):
        raise InvalidClient("malformed client assertion") from None
    if not isinstance(issuer, str) or not issuer:
        raise InvalidClient("malformed client assertion")
    return issuer


async def _private_key_jwt(
    form: Mapping[str, str],
    directory: PartnerDirectory,
    audiences: Sequence[str],
    remember_once: RememberOnce,
) -> AuthenticatedPartner:
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise InvalidClient("unsupported client_assertion_type")
    assertion = form.get("client_assertion", "")
    client_id = _assertion_issuer(assertion)
    if form.get("client_id") and form["client_id"] != client_id:
        raise InvalidClient("client_id does not match the assertion")
    partner = await directory.get(client_id)
    if partner is None or not partner.jwks:
        raise InvalidClient("client authentication failed")
    try:
        token = jwt.decode(
            assertion,
            KeySet.import_key_set(dict(partner.jwks)),  # type: ignore[arg-type]
            algorithms=list(ASSERTION_ALGORITHMS),
        )
    except (JoseError, ValueError):
        raise InvalidClient("client authentication failed") from None
    claims = token.claims
    now = time.time()
    aud = claims.get("aud")
    aud_values = [aud] if isinstance(aud, str) else list(aud) if isinstance(aud, list) else []
    checks = (
        claims.get("iss") == client_id and claims.get("sub") == client_id,
        any(a in audiences for a in aud_values),
        isinstance(claims.get("exp"), int | float) and claims["exp"] > now,
        isinstance(claims.get("iat"), int | float) and claims["iat"] <= now + MAX_CLOCK_SKEW_S,
        isinstance(claims.get("jti"), str) and 0 < len(claims["jti"]) <= 256,
    )
    if not all(checks):
        raise InvalidClient("client assertion claims are not acceptable")
    if claims["exp"] - claims["iat"] > MAX_ASSERTION_LIFETIME_S + MAX_CLOCK_SKEW_S:
        raise InvalidClient("client assertion lives too long")
    if not await remember_once(f"{client_id}:{claims['jti']}", float(claims["exp"])):
        raise InvalidClient("client assertion replayed")
    return partner


async def authenticate_client(
    authorization: str | None,
    form: Mapping[str, str],
    directory: PartnerDirectory,
    audiences: Sequence[str],
    remember_once: RememberOnce,
) -> AuthenticatedPartner:
    """The partner that authenticated this request, or `InvalidClient` (401)."""
    has_basic = authorization is not None
    has_assertion = "client_assertion" in form or "client_assertion_type" in form
    if "client_secret" in form:
        raise InvalidClient("client_secret_post is not supported; use client_secret_basic")
    if has_basic and has_assertion:
        raise InvalidRequest("use exactly one client authentication method")
    if has_assertion:
        return await _private_key_jwt(form, directory, audiences, remember_once)
    if not has_basic:
        raise InvalidClient("client authentication is required")
    assert authorization is not None
    client_id, secret = _basic_credentials(authorization)
    if form.get("client_id") and form["client_id"] != client_id:
        raise InvalidClient("client_id does not match the credentials")
    partner = await directory.authenticate(client_id, secret)
    if partner is None:
        raise InvalidClient("client authentication failed")
    return partner
