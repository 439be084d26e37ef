"""Passkeys: the two WebAuthn ceremonies (registration, authentication), with py_webauthn.

The relying party is the broker itself: its id is the host of `Settings.issuer`, its origin
the issuer's scheme, host and port. User verification is required (a passkey is the only
factor, so the authenticator must have checked the person: PIN, fingerprint, face); resident
(discoverable) keys are preferred, so that signing in needs no name typed; no attestation is
asked (`none`: the broker does not pick authenticator makers). The signature counter is
checked by py_webauthn (a counter that does not grow, when the authenticator keeps one, is a
cloned key) and again by the database write (`rows.record_use`).

The library's exception texts quote what the browser sent (an origin, a counter): they are
never passed on; `CeremonyRefused` names a fixed reason code instead.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from sharelock.accounts.errors import CeremonyRefused

# How long the browser may wait for the person (a hint to the browser); the challenge itself
# lives a little longer in Redis (`ceremonies.CEREMONY`).
CEREMONY_TIMEOUT_MS = 120_000
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
# The library's refusals, by what their (unquoted) text says, to a fixed reason code.
_REASONS = (
    ("challenge", "challenge"),
    ("origin", "origin"),
    ("RP ID", "rp_id"),
    ("not present", "user_presence"),
    ("User presence", "user_presence"),
    ("User verification", "user_verification"),
    ("sign count", "sign_count"),
    ("signature", "signature"),
    ("alg", "algorithm"),
    ("ttestation", "attestation"),
)


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """The broker as WebAuthn sees it."""

    rp_id: str
    origin: str
    name: str

    @classmethod
    def from_issuer(cls, issuer: str, name: str) -> RelyingParty | None:
        """From `Settings.issuer`; None when its host is an IP address, which cannot be a
        relying party id (browsers refuse passkeys there: use a name, e.g. `localhost`)."""
        parts = urlsplit(issuer)
        host = parts.hostname
        if not host or parts.scheme not in ("http", "https"):
            return None
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return None
        default_port = 443 if parts.scheme == "https" else 80
        netloc = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
        return cls(host, f"{parts.scheme}://{netloc}", name)


@dataclass(frozen=True, slots=True, repr=False)
class Options:
    """A ceremony's challenge (kept by the broker, single use) and the options the page hands
    to `navigator.credentials` (JSON, binary members in base64url)."""

    challenge: bytes
    public_key: dict[str, Any]

    def __repr__(self) -> str:
        return "Options()"


@dataclass(frozen=True, slots=True, repr=False)
class NewPasskey:
    """A verified registration: what the account keeps of the passkey."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]

    def __repr__(self) -> str:
        return f"NewPasskey(<{len(self.credential_id)}-byte id>)"


def _refused(exc: Exception) -> CeremonyRefused:
    if isinstance(exc, WebAuthnException):
        text = str(exc)
        for fragment, reason in _REASONS:
            if fragment in text:
                return CeremonyRefused(reason)
    return CeremonyRefused("malformed")


def registration_options(
    rp: RelyingParty, *, user_id: bytes, user_name: str, exclude: Sequence[bytes] = ()
) -> Options:
    """Options for `navigator.credentials.create()`: a new passkey for the account whose user
    handle is `user_id`, not one of `exclude` (its passkeys already registered)."""
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_id=user_id,
        user_name=user_name,
        user_display_name=user_name,
        timeout=CEREMONY_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=known) for known in exclude],
        supported_pub_key_algs=ALGORITHMS,
    )
    return Options(options.challenge, json.loads(options_to_json(options)))


def verify_registration(
    rp: RelyingParty, credential: Mapping[str, Any], challenge: bytes
) -> NewPasskey:
    """The browser's answer to `registration_options`, verified; `CeremonyRefused` if not."""
    try:
        parsed = parse_registration_credential_json(dict(credential))
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_presence=True,
            require_user_verification=True,
            supported_pub_key_algs=ALGORITHMS,
        )
    except Exception as exc:  # a malformed answer fails anywhere in the parsing
        raise _refused(exc) from None
    transports = tuple(sorted({t.value for t in parsed.response.transports or ()}))
    return NewPasskey(
        verified.credential_id, verified.credential_public_key, verified.sign_count, transports
    )


def authentication_options(rp: RelyingParty, allow: Sequence[bytes] = ()) -> Options:
    """Options for `navigator.credentials.get()`: any passkey of this broker (discoverable),
    or only `allow`."""
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=[PublicKeyCredentialDescriptor(id=known) for known in allow],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return Options(options.challenge, json.loads(options_to_json(options)))


@dataclass(frozen=True, slots=True, repr=False)
class Assertion:
    """A parsed answer to `authentication_options`, not yet verified: which passkey it names
    (to look it up), and the user handle the authenticator returned, if any."""

    credential_id: bytes
    user_handle: bytes | None
    document: dict[str, Any]

    def __repr__(self) -> str:
        return "Assertion()"


def parse_assertion(credential: Mapping[str, Any]) -> Assertion:
    try:
        parsed = parse_authentication_credential_json(dict(credential))
    except Exception as exc:
        raise _refused(exc) from None
    return Assertion(parsed.raw_id, parsed.response.user_handle, dict(credential))


def verify_assertion(
    rp: RelyingParty,
    assertion: Assertion,
    challenge: bytes,
    *,
    public_key: bytes,
    sign_count: int,
    user_handle: bytes,
) -> int:
    """Verify the assertion against the passkey's public key and last counter; the new
    counter. A user handle, when the authenticator returns one, must be the account's."""
    if assertion.user_handle is not None and assertion.user_handle != user_handle:
        raise CeremonyRefused("user_handle")
    try:
        verified = verify_authentication_response(
            credential=assertion.document,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except Exception as exc:
        raise _refused(exc) from None
    return int(verified.new_sign_count)
