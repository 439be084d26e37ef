"""Opening a credential envelope: RSA-OAEP in the HSM, then AES-256-GCM.

The RSA step runs inside the token (`KeyLayer.decrypt_key_block`); only the 32-byte content key
comes out, into a buffer wiped right after use. The content step uses pyca/cryptography's AESGCM.
If the token refuses the key block, or returns a key of the wrong length, the content step runs
anyway with a random key and fails on the tag (RFC 7516 §11.5): padding errors, length errors and
tag errors then take the same path and give the same error.
"""

from __future__ import annotations

import ctypes
import json
import re
import secrets
from contextlib import suppress
from types import TracebackType
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sharelock.envelope.compact import CompactJwe, parse_compact
from sharelock.envelope.errors import EnvelopeRejected
from sharelock.keys import DecryptionFailed, KeyLayer, KeyNotFound, UnsupportedAlgorithm

_CEK_BYTES = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object in which a member appears twice is refused, as in the header."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def wipe(buffer: bytearray) -> None:
    """Overwrite a buffer in place (Python cannot promise no other copy exists, but this one
    does not outlive its use)."""
    if buffer:
        ctypes.memset((ctypes.c_char * len(buffer)).from_buffer(buffer), 0, len(buffer))


class OpenedSecret:
    """The clear content of an envelope. Its repr says nothing; its buffer is wiped when the
    `with` block ends (or when it is garbage-collected, whichever comes first)."""

    __slots__ = ("_buffer",)

    def __init__(self, content: bytearray) -> None:
        self._buffer = content

    def __repr__(self) -> str:
        return "OpenedSecret(<redacted>)"

    __str__ = __repr__

    def __enter__(self) -> OpenedSecret:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.wipe()

    def __del__(self) -> None:
        self.wipe()

    def wipe(self) -> None:
        wipe(self._buffer)
        self._buffer = bytearray()

    @property
    def wiped(self) -> bool:
        return not self._buffer

    def view(self) -> memoryview:
        """A read-only view of the clear bytes, valid until the wipe."""
        return memoryview(self._buffer).toreadonly()

    def json_object(self, allowed: dict[str, int]) -> dict[str, str]:
        """Parse the content as a JSON object whose members are exactly `allowed` (name -> max
        length), all non-empty strings of Unicode characters, each member once. Any departure
        is `EnvelopeRejected`."""
        value: Any = None
        # Refused below, outside any handler: raised inside one, the error would chain the
        # UnicodeDecodeError or JSONDecodeError, which hold a copy of the clear content.
        with suppress(UnicodeDecodeError, ValueError, RecursionError):
            value = json.loads(self._buffer.decode("utf-8"), object_pairs_hook=_unique_members)
        if not isinstance(value, dict) or set(value) != set(allowed):
            raise EnvelopeRejected()
        for name, limit in allowed.items():
            member = value[name]
            if (
                not isinstance(member, str)
                or not 0 < len(member) <= limit
                or _SURROGATE.search(member)  # "\ud800" is valid JSON but no text
            ):
                raise EnvelopeRejected()
        return value


def _content_key(keys: KeyLayer, jwe: CompactJwe) -> bytearray:
    try:
        key = keys.key_for_kid(jwe.kid)
    except KeyNotFound:
        raise EnvelopeRejected() from None
    if len(jwe.encrypted_key) != len(key.public.modulus):
        raise EnvelopeRejected()
    try:
        cek = bytearray(keys.decrypt_key_block(jwe.kid, jwe.alg, jwe.encrypted_key))
    except (DecryptionFailed, UnsupportedAlgorithm, KeyNotFound):
        cek = bytearray()
    if len(cek) != _CEK_BYTES:
        wipe(cek)
        cek = bytearray(secrets.token_bytes(_CEK_BYTES))
    return cek


def decrypt_content(cek: bytes | bytearray, jwe: CompactJwe) -> bytearray:
    """The AES-256-GCM step (RFC 7518 §5.3): additional data is the protected header as sent."""
    try:
        clear = AESGCM(bytes(cek)).decrypt(jwe.iv, jwe.ciphertext + jwe.tag, jwe.protected_b64)
    except (InvalidTag, ValueError):
        raise EnvelopeRejected() from None
    return bytearray(clear)


def open_envelope(
    token: str | bytes, keys: KeyLayer, *, max_bytes: int = 64 * 1024
) -> OpenedSecret:
    """Open a compact JWE made with one of the broker's published keys.

    Raises `EnvelopeRejected` for every bad input, and `HsmUnavailable` if the token does not
    answer (the caller answers 503 and releases nothing)."""
    jwe = parse_compact(token, max_bytes=max_bytes, allowed_algs=keys.algorithms())
    cek = _content_key(keys, jwe)
    try:
        return OpenedSecret(decrypt_content(cek, jwe))
    finally:
        wipe(cek)
