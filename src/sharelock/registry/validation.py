"""What a partner registration must look like, checked before anything is stored.

Redirect URIs are compared exactly at authorization time (RFC 9700 §4.1.3), so they are
checked here, once, and then stored as typed: no normalisation that could make two different
strings match.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from sharelock.db import DELIVERY_FORMATS, FAPI2_PROFILE, PROFILES, ROLES
from sharelock.registry.errors import InvalidPartner
from sharelock.scopes import SCOPES

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_URI_LENGTH = 2000
MAX_NAME_LENGTH = 200
MAX_PURPOSE_LENGTH = 2000
MAX_REDIRECT_URIS = 20
MAX_DPO_CONTACT_LENGTH = 400
# Members of a JWK that only a private key has: a partner registers public keys only.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def _url(value: str, field: str) -> str:
    """An absolute https URL, or http to a loopback host (RFC 8252 §7.3); no userinfo, no
    fragment (RFC 6749 §3.1.2), nothing that parsers disagree on."""
    if not isinstance(value, str) or not value:
        raise InvalidPartner(f"{field}: must be a non-empty URL")
    shown = value if len(value) <= 200 else value[:200] + "…"
    if len(value) > MAX_URI_LENGTH:
        raise InvalidPartner(f"{field} {shown!r}: longer than {MAX_URI_LENGTH} characters")
    if _SPACE_OR_CONTROL.search(value) or "\\" in value:
        raise InvalidPartner(f"{field} {shown!r}: contains spaces, control characters or '\\'")
    if "#" in value:
        raise InvalidPartner(f"{field} {shown!r}: must not contain a fragment ('#')")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidPartner(f"{field} {shown!r}: not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not value.lower().startswith(scheme + "://"):
        raise InvalidPartner(f"{field} {shown!r}: must be an absolute https URL")
    if "@" in parts.netloc:
        raise InvalidPartner(f"{field} {shown!r}: must not contain user information ('@')")
    host = parts.hostname
    if not host:
        raise InvalidPartner(f"{field} {shown!r}: has no host")
    if port == 0:
        raise InvalidPartner(f"{field} {shown!r}: port 0 is not a valid port")
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        raise InvalidPartner(
            f"{field} {shown!r}: http is allowed only for loopback hosts "
            "(127.0.0.1, localhost, [::1]); use https"
        )
    if "%" in parts.netloc or (":" in host and not _is_ipv6(host)):
        raise InvalidPartner(f"{field} {shown!r}: invalid host")
    return value


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def redirect_uris(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    checked = tuple(dict.fromkeys(_url(v, "redirect_uri") for v in values))
    if not checked:
        raise InvalidPartner("redirect_uri: at least one is required")
    if len(checked) > MAX_REDIRECT_URIS:
        raise InvalidPartner(f"redirect_uri: at most {MAX_REDIRECT_URIS} are allowed")
    return checked


def scopes(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    checked: list[str] = []
    for value in values:
        if value not in SCOPES:
            raise InvalidPartner(f"scope {value!r}: unknown; expected one of {', '.join(SCOPES)}")
        if value not in checked:
            checked.append(value)
    if not checked:
        raise InvalidPartner(f"scope: at least one is required (one of {', '.join(SCOPES)})")
    return tuple(checked)


def text(
    value: str, field: str, *, max_length: int, required: bool = True, multiline: bool = False
) -> str:
    """Free text an operator typed (name, purpose): trimmed, bounded, no control characters,
    because it is shown on the consent screen and printed in records."""
    value = value.strip() if isinstance(value, str) else ""
    if required and not value:
        raise InvalidPartner(f"{field}: must not be empty")
    if len(value) > max_length:
        raise InvalidPartner(f"{field}: longer than {max_length} characters")
    if _CONTROL.search(value.replace("\n", "") if multiline else value):
        raise InvalidPartner(f"{field}: contains control characters")
    return value


def dpo_contact(value: str | None) -> str | None:
    """How to reach the partner's data-protection officer: one line (an address, a URL, a
    postal address), shown to people on the rights page; None or blank for none."""
    if value is None:
        return None
    return text(value, "dpo_contact", max_length=MAX_DPO_CONTACT_LENGTH, required=False) or None


def optional_url(value: str | None, field: str) -> str | None:
    return None if value is None or value == "" else _url(value, field)


def webhook_url(value: str | None) -> str | None:
    """Where the broker pushes the partner's Security Event Tokens: an absolute https URL (http
    only to a loopback host, for the sandbox), as for redirect URIs; None or "" for none."""
    return optional_url(value, "webhook_url")


def profile(
    value: str, jwks: Mapping[str, Any] | None, jwks_uri: str | None, par_exempt: bool
) -> str:
    """`fapi2` needs the partner's public keys (private_key_jwt is its only client
    authentication) and PAR for every request; `basic` needs nothing more."""
    if value not in PROFILES:
        raise InvalidPartner(f"profile {value!r}: expected one of {', '.join(PROFILES)}")
    if value == FAPI2_PROFILE and jwks is None and jwks_uri is None:
        raise InvalidPartner(
            "profile fapi2 authenticates with private_key_jwt: give the partner's public keys "
            "(--jwks-file or --jwks-uri), or choose --profile basic"
        )
    if value == FAPI2_PROFILE and par_exempt:
        raise InvalidPartner("profile fapi2 requires PAR: it cannot allow plain authorize")
    return value


def delivery_format(value: str, jwks: Mapping[str, Any] | None) -> str:
    """`jwe` needs an encryption key in the partner's JWKS (`use: enc`, P-256 or RSA), given
    inline: the broker encrypts to it at every delivery."""
    if value not in DELIVERY_FORMATS:
        raise InvalidPartner(f"delivery {value!r}: expected one of {', '.join(DELIVERY_FORMATS)}")
    if value == "jwe" and encryption_key(jwks) is None:
        raise InvalidPartner(
            "delivery jwe needs a use: enc key (EC P-256 or RSA) in the partner's --jwks-file"
        )
    return value


def signed_requests(value: bool, jwks: Mapping[str, Any] | None) -> bool:
    """Signed request objects are verified with the partner's inline public keys."""
    if value and jwks is None:
        raise InvalidPartner("signed requests are verified with the partner's --jwks-file keys")
    return value


def encryption_key(jwks: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The partner's key to encrypt deliveries to: the first `use: enc` EC P-256 or RSA key
    of its JWKS; None if it has none."""
    for key in (jwks or {}).get("keys", []):
        if not isinstance(key, dict) or key.get("use") != "enc":
            continue
        if (key.get("kty") == "EC" and key.get("crv") == "P-256") or key.get("kty") == "RSA":
            return dict(key)
    return None


def role(value: str) -> str:
    if value not in ROLES:
        raise InvalidPartner(f"role {value!r}: expected one of {', '.join(ROLES)}")
    return value


def jwks(value: Mapping[str, Any] | None, jwks_uri: str | None) -> dict[str, Any] | None:
    """A public JWK Set for `private_key_jwt`; private members are refused outright."""
    if value is not None and jwks_uri is not None:
        raise InvalidPartner("jwks and jwks_uri: give one or the other, not both (RFC 7591)")
    if value is None:
        return None
    keys = value.get("keys") if isinstance(value, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise InvalidPartner('jwks: must be a JWK Set, {"keys": [...]}, with at least one key')
    for key in keys:
        if not isinstance(key, Mapping):
            raise InvalidPartner("jwks: every key must be a JSON object")
        private = sorted(_PRIVATE_JWK_MEMBERS & set(key))
        if private:
            raise InvalidPartner(
                f"jwks: holds private key material ({', '.join(private)}); "
                "register the public keys only"
            )
    try:
        KeySet.import_key_set({"keys": [dict(k) for k in keys]})
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidPartner("jwks: not a valid JWK Set") from None
    return {"keys": [dict(k) for k in keys]}
