"""Client authentication at the token and PAR endpoints: `client_secret_basic` (RFC 6749
§2.3.1) and `private_key_jwt` (RFC 7523 §2.2, with the checks of RFC 9700, FAPI 2.0 §5.3.2.1
and draft-ietf-oauth-rfc7523bis)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeGuard
from urllib.parse import unquote

from joserfc import jws, jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet

from sharelock.db import FAPI2_PROFILE
from sharelock.oauth.errors import InvalidClient, InvalidRequest

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# FAPI 2.0 §5.4.1: PS256, ES256 or EdDSA (Ed25519); RS256 (PKCS#1 v1.5) is not among them.
# "Ed25519" is the same algorithm under RFC 9864's name, which oauth4webapi 3 signs with.
ASSERTION_ALGORITHMS = ("PS256", "ES256", "EdDSA", "Ed25519")
MAX_CLOCK_SKEW_S = 60
MAX_ASSERTION_LIFETIME_S = 300

# joserfc warns on every EdDSA verification that RFC 9864 deprecates the name in favour of
# "Ed25519". FAPI 2.0 names EdDSA and partners' libraries sign with it: accepted on purpose,
# so the warning would only fill the log.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

METHOD_BASIC = "client_secret_basic"
METHOD_POST = "client_secret_post"
METHOD_JWT = "private_key_jwt"


class AuthenticatedPartner(Protocol):
    @property
    def client_id(self) -> str: ...
    @property
    def jwks(self) -> Mapping[str, Any] | None: ...
    @property
    def profile(self) -> str: ...


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


def is_number(value: object) -> TypeGuard[float]:
    # bool is an int in Python (`"exp": true` is no time), and Python's JSON reads NaN and
    # Infinity, which every comparison below would let through.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# The key each signing algorithm verifies with: key type and curve (None: any size of RSA).
_KEY_FOR_ALG: dict[str, tuple[str, str | None]] = {
    "PS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),
}


def _fits(key: Mapping[str, Any], alg: str | None) -> bool:
    if key.get("use") == "enc":  # RFC 7517 §4.2: an encryption key verifies nothing
        return False
    if key.get("kty") == "OKP" and key.get("crv") != "Ed25519":
        return False
    if alg is None:
        return True
    kty, crv = _KEY_FOR_ALG.get(alg, ("", None))
    return key.get("kty") == kty and (crv is None or key.get("crv") == crv)


def verification_keys(jwks: Mapping[str, Any], alg: str | None = None) -> KeySet:
    """The partner's keys that may verify a signature (with `alg`, those fit for it): no
    `use: enc` key, and no OKP key other than Ed25519 (FAPI 2.0 allows EdDSA with Ed25519
    only, and joserfc's EdDSA would verify with an Ed448 key too)."""
    keys = [key for key in jwks.get("keys", []) if isinstance(key, Mapping) and _fits(key, alg)]
    return KeySet.import_key_set({"keys": keys})  # type: ignore[typeddict-item]


def decode_signed(token: str, jwks: Mapping[str, Any]) -> jwt.Token:
    """A partner's JWT (client assertion, request object) verified with its registered keys
    and an allowed algorithm; `JoseError` or `ValueError` if it does not verify.

    The header's `kid` picks the key. Without one (RFC 7515 makes it optional, and Authlib
    sends none), each key fit for the header's `alg` is tried: the JWKS is the partner's own
    and small, so this costs a few verifications at most, never a stranger's choice."""
    header = jws.extract_compact(token.encode("ascii")).protected
    alg = header.get("alg")
    keys = verification_keys(jwks, alg if isinstance(alg, str) else None)
    algorithms = list(ASSERTION_ALGORITHMS)
    if "kid" in header or len(keys.keys) <= 1:
        return jwt.decode(token, keys, algorithms=algorithms)
    failure: JoseError | ValueError = ValueError("no key verifies the signature")
    for key in keys.keys:
        try:
            return jwt.decode(token, key, algorithms=algorithms)
        except (JoseError, ValueError) as exc:
            failure = exc
    raise failure


def _check_claims(claims: Mapping[str, Any], client_id: str, issuer: str, now: float) -> None:
    """The claims of a verified assertion (RFC 7523 §3, draft-ietf-oauth-rfc7523bis):
    `aud` is the issuer identifier and nothing else, the times are present and tight."""
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise InvalidClient("client assertion iss and sub must be the client_id")
    # A single string, exactly the issuer: not an array, not an endpoint URL. An assertion
    # made for another server (or another endpoint of a server that accepts several
    # audiences) cannot be replayed here, and ours cannot be replayed elsewhere.
    if not isinstance(claims.get("aud"), str) or claims["aud"] != issuer:
        raise InvalidClient("client assertion aud must be the issuer identifier")
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if not is_number(exp) or not is_number(iat):
        raise InvalidClient("client assertion exp and iat are required")
    if exp <= now:
        raise InvalidClient("client assertion has expired")
    if iat > now + MAX_CLOCK_SKEW_S:
        raise InvalidClient("client assertion is issued in the future")
    if nbf is not None and (not is_number(nbf) or nbf > now + MAX_CLOCK_SKEW_S):
        raise InvalidClient("client assertion is not valid yet")
    # Short-lived, whatever iat claims: a backdated iat does not buy a longer life.
    if (
        exp - iat > MAX_ASSERTION_LIFETIME_S
        or exp - now > MAX_ASSERTION_LIFETIME_S + MAX_CLOCK_SKEW_S
    ):
        raise InvalidClient("client assertion lives too long")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:
        raise InvalidClient("client assertion jti is required")


async def _private_key_jwt(
    form: Mapping[str, str],
    directory: PartnerDirectory,
    issuer: str,
    remember_once: RememberOnce,
    now: float,
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
        token = decode_signed(assertion, partner.jwks)
    except (JoseError, ValueError):
        raise InvalidClient("client authentication failed") from None
    _check_claims(token.claims, client_id, issuer, now)
    if not await remember_once(f"{client_id}:{token.claims['jti']}", float(token.claims["exp"])):
        raise InvalidClient("client assertion replayed")
    return partner


def _method(authorization: str | None, form: Mapping[str, str]) -> str | None:
    """The method the client tried, for the challenge of a refusal (RFC 6749 §5.2)."""
    if "client_assertion" in form or "client_assertion_type" in form:
        return METHOD_JWT
    if authorization is not None:
        return METHOD_BASIC
    if "client_secret" in form:
        return METHOD_POST
    return None


async def authenticate_client(
    authorization: str | None,
    form: Mapping[str, str],
    directory: PartnerDirectory,
    issuer: str,
    remember_once: RememberOnce,
    now: float | None = None,
) -> AuthenticatedPartner:
    """The partner that authenticated this request, or `InvalidClient` (401) naming the
    method it tried. `issuer` is the only audience a client assertion may name; `now` (the
    broker's clock) judges an assertion's times."""
    method = _method(authorization, form)
    moment = time.time() if now is None else now
    try:
        partner = await _authenticate(
            method, authorization, form, directory, issuer, remember_once, moment
        )
        if partner.profile == FAPI2_PROFILE and method != METHOD_JWT:
            # FAPI 2.0 §5.3.2.1: asymmetric client authentication only.
            raise InvalidClient("this client must authenticate with private_key_jwt (FAPI 2.0)")
    except InvalidClient as exc:
        exc.method = method
        raise
    return partner


async def _authenticate(
    method: str | None,
    authorization: str | None,
    form: Mapping[str, str],
    directory: PartnerDirectory,
    issuer: str,
    remember_once: RememberOnce,
    now: float,
) -> AuthenticatedPartner:
    if "client_secret" in form:
        raise InvalidClient("client_secret_post is not supported; use client_secret_basic")
    if authorization is not None and method == METHOD_JWT:
        raise InvalidRequest("use exactly one client authentication method")
    if method == METHOD_JWT:
        return await _private_key_jwt(form, directory, issuer, remember_once, now)
    if authorization is None:
        raise InvalidClient("client authentication is required")
    client_id, secret = _basic_credentials(authorization)
    if form.get("client_id") and form["client_id"] != client_id:
        raise InvalidClient("client_id does not match the credentials")
    partner = await directory.authenticate(client_id, secret)
    if partner is None:
        raise InvalidClient("client authentication failed")
    return partner
