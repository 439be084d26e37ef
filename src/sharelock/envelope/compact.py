"""Strict parsing of a compact JWE (RFC 7516 §7.1) before any key is touched.

Hand-written rather than delegated to a JOSE library because the broker must reject, *before*
the HSM is called and with one uniform error, inputs that libraries accept or tolerate: padded
or non-canonical base64url, duplicate header members, headers it does not allow-list (`zip`,
`crit`, `jku`, `jwk`, `x5u`, `p2c`, …), IVs and tags of the wrong length.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from sharelock.envelope.errors import EnvelopeRejected

ALLOWED_ENC = "A256GCM"
MAX_PROTECTED_HEADER_BYTES = 1024
# Members the broker understands; anything else (zip, crit, jku, jwk, x5u, x5c, epk, p2s, p2c,
# apu, apv, iv, tag, …) makes the envelope unacceptable.
ALLOWED_HEADER_MEMBERS = frozenset({"alg", "enc", "kid", "typ", "cty"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_IV_BYTES = 12
_TAG_BYTES = 16


@dataclass(frozen=True, slots=True)
class CompactJwe:
    protected_b64: bytes  # exactly as received: it is the AES-GCM additional data
    alg: str
    enc: str
    kid: str
    encrypted_key: bytes
    iv: bytes
    ciphertext: bytes
    tag: bytes


def b64url_decode(part: str) -> bytes:
    """Decode unpadded, canonical base64url; anything else is rejected."""
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise EnvelopeRejected()
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise EnvelopeRejected() from None
    # Reject encodings with non-zero trailing bits: one value, one spelling.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != part:
        raise EnvelopeRejected()
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise EnvelopeRejected()
        result[key] = value
    return result


def parse_header(protected_b64: str) -> dict[str, Any]:
    if len(protected_b64) > (MAX_PROTECTED_HEADER_BYTES * 4 + 2) // 3:
        raise EnvelopeRejected()
    raw = b64url_decode(protected_b64)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: 1 KiB of '[' nests deeper than the interpreter allows.
        raise EnvelopeRejected() from None
    if not isinstance(header, dict) or not set(header) <= ALLOWED_HEADER_MEMBERS:
        raise EnvelopeRejected()
    if not all(isinstance(value, str) and value for value in header.values()):
        raise EnvelopeRejected()
    return header


def parse_compact(
    token: str | bytes, *, max_bytes: int, allowed_algs: tuple[str, ...]
) -> CompactJwe:
    """Split and check a compact JWE; raises `EnvelopeRejected` for any departure."""
    if len(token) > max_bytes:
        raise EnvelopeRejected()
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise EnvelopeRejected() from None
    parts = token.split(".")
    if len(parts) != 5:
        raise EnvelopeRejected()
    protected, encrypted_key, iv, ciphertext, tag = parts
    header = parse_header(protected)
    alg, enc, kid = header.get("alg"), header.get("enc"), header.get("kid")
    if alg not in allowed_algs or enc != ALLOWED_ENC or not isinstance(kid, str):
        raise EnvelopeRejected()
    jwe = CompactJwe(
        protected_b64=protected.encode("ascii"),
        alg=alg,
        enc=enc,
        kid=kid,
        encrypted_key=b64url_decode(encrypted_key),
        iv=b64url_decode(iv),
        ciphertext=b64url_decode(ciphertext),
        tag=b64url_decode(tag),
    )
    if len(jwe.iv) != _IV_BYTES or len(jwe.tag) != _TAG_BYTES or not jwe.encrypted_key:
        raise EnvelopeRejected()
    return jwe
