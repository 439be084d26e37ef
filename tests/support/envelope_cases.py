"""A catalogue of bad credential envelopes (SECURITY-CHECKLIST section A), each derived from a
valid JWE for the broker's published key, so that the only difference from an envelope that
opens is the attack itself.

Each case says whether the broker must reach the HSM before refusing: cases the parser can
refuse must cost no HSM call; cases that only the cryptography can refuse (tampered tag,
corrupted key block) cost exactly one RSA decryption and then fail like all the others.
"""

from __future__ import annotations

import base64
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.jwe import OAEP, JweParts, b64u, build, public_key_from_jwk

Jwk = dict[str, Any]
Maker = Callable[[Jwk, bytes], str | bytes]

GENERIC_MESSAGE = "the credential envelope could not be opened"


@dataclass(frozen=True)
class Case:
    make: Maker
    reaches_hsm: bool  # True: exactly one HSM call before the refusal; False: none


def header(jwk: Jwk, /, **members: Any) -> dict[str, Any]:
    """The default protected header with members added, changed, or removed (value None)."""
    base: dict[str, Any] = {"alg": "RSA-OAEP", "enc": "A256GCM", "kid": jwk["kid"]}
    base.update(members)
    return {k: v for k, v in base.items() if v is not None}


def b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def flip(part: str, index: int, bit: int = 0x01) -> str:
    raw = bytearray(b64d(part))
    raw[index] ^= bit
    return b64u(bytes(raw))


@cache
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=4096)


def _valid(jwk: Jwk, plaintext: bytes) -> JweParts:
    return build(jwk, plaintext)


def _with_header(members: dict[str, Any]) -> Maker:
    def make(jwk: Jwk, plaintext: bytes) -> str:
        return build(jwk, plaintext, header=header(jwk, **members)).compact()

    return make


def _raw_header(text: Callable[[Jwk], bytes]) -> Maker:
    def make(jwk: Jwk, plaintext: bytes) -> str:
        return build(jwk, plaintext, raw_header=text(jwk)).compact()

    return make


def _tamper(change: Callable[[JweParts], JweParts]) -> Maker:
    def make(jwk: Jwk, plaintext: bytes) -> str:
        return change(_valid(jwk, plaintext)).compact()

    return make


def _compact(change: Callable[[str], str | bytes]) -> Maker:
    def make(jwk: Jwk, plaintext: bytes) -> str | bytes:
        return change(_valid(jwk, plaintext).compact())

    return make


def _rsa1_5(jwk: Jwk, plaintext: bytes) -> str:
    """RFC 7516 A.2: the CEK wrapped with PKCS#1 v1.5 padding."""
    cek = os.urandom(32)
    parts = build(jwk, plaintext, header=header(jwk, alg="RSA1_5"), cek=cek)
    wrapped = public_key_from_jwk(jwk).encrypt(cek, padding.PKCS1v15())
    return parts.with_(encrypted_key=b64u(wrapped)).compact()


def _encrypted_key(value: Callable[[bytes], bytes]) -> Maker:
    def make(jwk: Jwk, plaintext: bytes) -> str:
        parts = _valid(jwk, plaintext)
        return parts.with_(encrypted_key=b64u(value(b64d(parts.encrypted_key)))).compact()

    return make


def _wrapped_for_another_key(jwk: Jwk, plaintext: bytes) -> str:
    cek = os.urandom(32)
    parts = build(jwk, plaintext, cek=cek)
    block = other_rsa_key().public_key().encrypt(cek, OAEP["RSA-OAEP"])
    return parts.with_(encrypted_key=b64u(block)).compact()


def _other_cek(jwk: Jwk, plaintext: bytes) -> str:
    parts = build(jwk, plaintext)
    block = public_key_from_jwk(jwk).encrypt(os.urandom(32), OAEP["RSA-OAEP"])
    return parts.with_(encrypted_key=b64u(block)).compact()


def _cek_of(length: int) -> Maker:
    def make(jwk: Jwk, plaintext: bytes) -> str:
        return build(jwk, plaintext, cek=os.urandom(length)).compact()

    return make


def _iv_of(length: int) -> Maker:
    def make(jwk: Jwk, plaintext: bytes) -> str:
        return build(jwk, plaintext, iv=os.urandom(length)).compact()

    return make


def _respelled_header(jwk: Jwk, plaintext: bytes) -> str:
    """The same members, serialised differently: the AAD (the header as sent) changes."""
    parts = _valid(jwk, plaintext)
    members = json.loads(b64d(parts.protected))
    respelled = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    assert b64u(respelled) != parts.protected
    return parts.with_(protected=b64u(respelled)).compact()


def _header_member_added(jwk: Jwk, plaintext: bytes) -> str:
    parts = _valid(jwk, plaintext)
    members = {**json.loads(b64d(parts.protected)), "typ": "JOSE"}
    return parts.with_(protected=b64u(json.dumps(members).encode())).compact()


def _standard_alphabet(compact: str) -> str:
    """One part spelled with '+' and '/' instead of '-' and '_' (same bytes)."""
    parts = compact.split(".")
    for index, part in enumerate(parts):
        if "-" in part or "_" in part:
            parts[index] = part.replace("-", "+").replace("_", "/")
            return ".".join(parts)
    raise AssertionError("no part uses the URL-safe characters")  # pragma: no cover


def _padded(index: int) -> Callable[[str], str]:
    def change(compact: str) -> str:
        parts = compact.split(".")
        raw = b64d(parts[index])
        padded = base64.urlsafe_b64encode(raw).decode()
        if padded == parts[index]:  # no padding needed at this length: force one more '='
            padded += "="
        parts[index] = padded
        return ".".join(parts)

    return change


def _non_canonical(compact: str) -> str:
    """The IV (12 bytes, 16 characters, no spare bits) is canonical by construction, so use the
    tag's last character (16 bytes -> 22 characters, 4 spare bits): set a spare bit."""
    parts = compact.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(parts[4][-1])
    parts[4] = parts[4][:-1] + alphabet[last ^ 0x01]
    assert b64d(parts[4]) == b64d(compact.split(".")[4])  # same bytes, other spelling
    return ".".join(parts)


def _json_serialization(flattened: bool) -> Maker:
    def make(jwk: Jwk, plaintext: bytes) -> str:
        parts = _valid(jwk, plaintext)
        recipient = {"encrypted_key": parts.encrypted_key}
        body: dict[str, Any] = {
            "protected": parts.protected,
            "iv": parts.iv,
            "ciphertext": parts.ciphertext,
            "tag": parts.tag,
        }
        body.update(recipient if flattened else {"recipients": [recipient]})
        return json.dumps(body)

    return make


def _deflated(jwk: Jwk, plaintext: bytes) -> str:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = squeeze.compress(plaintext) + squeeze.flush()
    return build(jwk, body, header=header(jwk, zip="DEF")).compact()


def _oversized_header(jwk: Jwk, plaintext: bytes) -> str:
    return build(jwk, plaintext, header=header(jwk, typ="x" * 1100)).compact()


def _oversized_input(jwk: Jwk, plaintext: bytes) -> str:
    return build(jwk, plaintext + b" " * (64 * 1024)).compact()


def _duplicate(first: str, second: str) -> Callable[[Jwk], bytes]:
    def text(jwk: Jwk) -> bytes:
        return (
            f'{{"alg":"{first}","enc":"A256GCM","kid":"{jwk["kid"]}","alg":"{second}"}}'
        ).encode()

    return text


ATTACKER_URL = "http://127.0.0.1:9/attacker"

CASES: dict[str, Case] = {
    # 3. RSA1_5
    "alg RSA1_5": Case(_rsa1_5, False),
    # 4. other alg / enc
    "enc A128GCM": Case(
        lambda jwk, pt: build(
            jwk, pt, header=header(jwk, enc="A128GCM"), cek=os.urandom(16)
        ).compact(),
        False,
    ),
    "enc A256CBC-HS512": Case(_with_header({"enc": "A256CBC-HS512"}), False),
    "alg dir": Case(_with_header({"alg": "dir"}), False),
    "alg dir, empty key": Case(
        lambda jwk, pt: (
            build(jwk, pt, header=header(jwk, alg="dir")).with_(encrypted_key="").compact()
        ),
        False,
    ),
    "alg none": Case(_with_header({"alg": "none"}), False),
    "alg ECDH-ES": Case(_with_header({"alg": "ECDH-ES"}), False),
    "alg ECDH-ES with epk": Case(
        _with_header({"alg": "ECDH-ES", "epk": {"kty": "EC", "crv": "P-256", "x": "AA"}}),
        False,
    ),
    "alg A256KW": Case(_with_header({"alg": "A256KW"}), False),
    "alg PBES2 p2c=1e9": Case(
        _with_header({"alg": "PBES2-HS512+A256KW", "p2c": 10**9, "p2s": b64u(os.urandom(16))}),
        False,
    ),
    "alg PBES2 (no p2c)": Case(_with_header({"alg": "PBES2-HS512+A256KW"}), False),
    # 5. missing, empty or unknown members
    "alg missing": Case(_with_header({"alg": None}), False),
    "enc missing": Case(_with_header({"enc": None}), False),
    "kid missing": Case(_with_header({"kid": None}), False),
    "alg empty": Case(_with_header({"alg": ""}), False),
    "enc empty": Case(_with_header({"enc": ""}), False),
    "kid empty": Case(_with_header({"kid": ""}), False),
    "alg null": Case(_raw_header(lambda jwk: b'{"alg":null,"enc":"A256GCM","kid":"k"}'), False),
    "alg not a string": Case(_with_header({"alg": ["RSA-OAEP"]}), False),
    "crit unknown": Case(_with_header({"crit": ["exp"], "exp": 1}), False),
    "crit empty list": Case(_with_header({"crit": []}), False),
    "alg upper-case member": Case(_with_header({"alg": None, "ALG": "RSA-OAEP"}), False),
    # 6. tag
    "tag first bit flipped": Case(_tamper(lambda p: p.with_(tag=flip(p.tag, 0))), True),
    "tag last bit flipped": Case(_tamper(lambda p: p.with_(tag=flip(p.tag, 15, 0x80))), True),
    "tag truncated by 1": Case(_tamper(lambda p: p.with_(tag=b64u(b64d(p.tag)[:-1]))), False),
    "tag truncated by 4": Case(_tamper(lambda p: p.with_(tag=b64u(b64d(p.tag)[:-4]))), False),
    "tag truncated by 8": Case(_tamper(lambda p: p.with_(tag=b64u(b64d(p.tag)[:-8]))), False),
    "tag with 1 byte appended": Case(
        _tamper(lambda p: p.with_(tag=b64u(b64d(p.tag) + b"\0"))), False
    ),
    "tag with 16 bytes appended": Case(
        _tamper(lambda p: p.with_(tag=b64u(b64d(p.tag) + os.urandom(16)))), False
    ),
    "tag empty": Case(_tamper(lambda p: p.with_(tag="")), False),
    # 7. ciphertext, IV, protected header (the AAD)
    "ciphertext byte flipped": Case(
        _tamper(lambda p: p.with_(ciphertext=flip(p.ciphertext, 3))), True
    ),
    "ciphertext truncated": Case(
        _tamper(lambda p: p.with_(ciphertext=b64u(b64d(p.ciphertext)[:-1]))), True
    ),
    "ciphertext extended": Case(
        _tamper(lambda p: p.with_(ciphertext=b64u(b64d(p.ciphertext) + b"\0"))), True
    ),
    "ciphertext empty": Case(_tamper(lambda p: p.with_(ciphertext="")), True),
    "iv byte flipped": Case(_tamper(lambda p: p.with_(iv=flip(p.iv, 11))), True),
    "header respelled (same members)": Case(_respelled_header, True),
    "header member added (typ)": Case(_header_member_added, True),
    # 8. corrupted encrypted key (right length)
    "encrypted key: random bytes": Case(_encrypted_key(lambda b: os.urandom(len(b))), True),
    "encrypted key: first bit flipped": Case(
        _encrypted_key(lambda b: bytes([b[0] ^ 0x01]) + b[1:]), True
    ),
    "encrypted key: middle bit flipped": Case(
        _encrypted_key(lambda b: b[:255] + bytes([b[255] ^ 0x10]) + b[256:]), True
    ),
    "encrypted key: last bit flipped": Case(
        _encrypted_key(lambda b: b[:-1] + bytes([b[-1] ^ 0x80])), True
    ),
    "encrypted key: all 0xff (above the modulus)": Case(
        _encrypted_key(lambda b: b"\xff" * len(b)), True
    ),
    "encrypted key: all zero": Case(_encrypted_key(lambda b: b"\0" * len(b)), True),
    "encrypted key: for another RSA key": Case(_wrapped_for_another_key, True),
    "encrypted key: another CEK": Case(_other_cek, True),
    # 9. encrypted key of the wrong length
    "encrypted key: 0 bytes": Case(_tamper(lambda p: p.with_(encrypted_key="")), False),
    "encrypted key: 511 bytes": Case(_encrypted_key(lambda b: b[1:]), False),
    "encrypted key: 513 bytes": Case(_encrypted_key(lambda b: b + b"\0"), False),
    "encrypted key: leading 0x00": Case(_encrypted_key(lambda b: b"\0" + b), False),
    # 10. CEK of the wrong length for A256GCM
    "CEK of 16 bytes": Case(_cek_of(16), True),
    "CEK of 24 bytes": Case(_cek_of(24), True),
    "CEK of 0 bytes": Case(_cek_of(0), True),
    "CEK of 31 bytes": Case(_cek_of(31), True),
    "CEK of 33 bytes": Case(_cek_of(33), True),
    "CEK of 64 bytes": Case(_cek_of(64), True),
    # 11. IV not 96 bits
    "IV of 8 bytes": Case(_iv_of(8), False),
    "IV of 16 bytes": Case(_iv_of(16), False),
    "IV empty": Case(_tamper(lambda p: p.with_(iv="")), False),
    # 12. structure and encoding
    "4 parts": Case(_compact(lambda c: c.rsplit(".", 1)[0]), False),
    "6 parts": Case(_compact(lambda c: c + ".AAAA"), False),
    "trailing dot": Case(_compact(lambda c: c + "."), False),
    "JSON serialization (flattened)": Case(_json_serialization(True), False),
    "JSON serialization (general)": Case(_json_serialization(False), False),
    "padding '=' on the header": Case(_compact(_padded(0)), False),
    "padding '=' on the encrypted key": Case(_compact(_padded(1)), False),
    "padding '=' on the tag": Case(_compact(_padded(4)), False),
    "standard alphabet '+' '/'": Case(_compact(_standard_alphabet), False),
    "non-canonical base64 (spare bits set)": Case(_compact(_non_canonical), False),
    "part of length 1 mod 4": Case(
        _tamper(lambda p: p.with_(ciphertext=p.ciphertext + "A" * (5 - len(p.ciphertext) % 4))),
        False,
    ),
    "leading space": Case(_compact(lambda c: " " + c), False),
    "trailing newline": Case(_compact(lambda c: c + "\n"), False),
    "CRLF at the end": Case(_compact(lambda c: c + "\r\n"), False),
    "space after a dot": Case(_compact(lambda c: c.replace(".", ". ", 1)), False),
    "tab inside a part": Case(_compact(lambda c: c[:40] + "\t" + c[40:]), False),
    "newline inside a part": Case(_compact(lambda c: c[:700] + "\n" + c[700:]), False),
    "non-ASCII character": Case(_compact(lambda c: c[:30] + "\u00e9" + c[31:]), False),
    "non-ASCII bytes": Case(
        _compact(lambda c: c.encode()[:30] + b"\xc3\xa9" + c.encode()[31:]), False
    ),
    "fullwidth digit": Case(_compact(lambda c: c[:30] + "\uff11" + c[31:]), False),
    'duplicate "alg" (same value)': Case(_raw_header(_duplicate("RSA-OAEP", "RSA-OAEP")), False),
    'duplicate "alg" (RSA1_5 then RSA-OAEP)': Case(
        _raw_header(_duplicate("RSA1_5", "RSA-OAEP")), False
    ),
    'duplicate "alg" via a \\u escape': Case(
        _raw_header(
            lambda jwk: (
                f'{{"alg":"RSA-OAEP","enc":"A256GCM","kid":"{jwk["kid"]}","\\u0061lg":"RSA1_5"}}'
            ).encode()
        ),
        False,
    ),
    "header not JSON": Case(_raw_header(lambda jwk: b"alg=RSA-OAEP&enc=A256GCM"), False),
    "header a JSON array": Case(_raw_header(lambda jwk: b'["RSA-OAEP","A256GCM"]'), False),
    "header a JSON string": Case(_raw_header(lambda jwk: b'"RSA-OAEP"'), False),
    "header nested 1000 deep": Case(_raw_header(lambda jwk: b"[" * 1000), False),
    "header empty": Case(_tamper(lambda p: p.with_(protected="")), False),
    "header not UTF-8": Case(
        _raw_header(
            lambda jwk: (
                b'{"alg":"RSA-OAEP","enc":"A256GCM","kid":"'
                + jwk["kid"].encode()
                + b'","typ":"\xff\xfe"}'
            )
        ),
        False,
    ),
    "header UTF-16": Case(_raw_header(lambda jwk: json.dumps(header(jwk)).encode("utf-16")), False),
    "header with a UTF-8 BOM": Case(
        _raw_header(lambda jwk: b"\xef\xbb\xbf" + json.dumps(header(jwk)).encode()), False
    ),
    "header with NaN": Case(
        _raw_header(lambda jwk: json.dumps(header(jwk))[:-1].encode() + b',"typ":NaN}'), False
    ),
    # 13. compression
    'zip "DEF"': Case(_deflated, False),
    # 14. key references the broker must not follow; unknown kid
    "jku to a listener": Case(_with_header({"jku": ATTACKER_URL}), False),
    "x5u to a listener": Case(_with_header({"x5u": ATTACKER_URL}), False),
    "jwk embedded": Case(_with_header({"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}}), False),
    "x5c embedded": Case(_with_header({"x5c": ["MIIB"]}), False),
    "x5t": Case(_with_header({"x5t": "AAAA"}), False),
    "unknown kid": Case(_with_header({"kid": "no-such-key"}), False),
    "kid of another key": Case(
        _with_header({"kid": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}), False
    ),
    # 15. size
    "protected header over 1 KiB": Case(_oversized_header, False),
    "input over 64 KiB": Case(_oversized_input, False),
}
