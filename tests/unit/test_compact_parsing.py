"""The compact-JWE parser alone (no key, no HSM): strict base64url, the header allow-list,
the part count and lengths, the size limits."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from sharelock.envelope import ALLOWED_ENC, EnvelopeRejected, parse_compact
from sharelock.envelope.compact import (
    ALLOWED_HEADER_MEMBERS,
    MAX_PROTECTED_HEADER_BYTES,
    b64url_decode,
    parse_header,
)

ALGS = ("RSA-OAEP",)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(
    header: dict[str, Any] | bytes | None = None,
    *,
    encrypted_key: bytes = b"K" * 512,
    iv: bytes = b"I" * 12,
    ciphertext: bytes = b"C" * 40,
    tag: bytes = b"T" * 16,
) -> str:
    if header is None:
        header = {"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k1"}
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return ".".join(b64u(part) for part in (raw, encrypted_key, iv, ciphertext, tag))


def parse(token: str | bytes, max_bytes: int = 64 * 1024) -> Any:
    return parse_compact(token, max_bytes=max_bytes, allowed_algs=ALGS)


def rejected(token: str | bytes, max_bytes: int = 64 * 1024) -> None:
    with pytest.raises(EnvelopeRejected) as info:
        parse(token, max_bytes)
    assert str(info.value) == "the credential envelope could not be opened"


# -- base64url ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(0, 7))
def test_canonical_base64url_round_trips(size: int) -> None:
    data = os.urandom(size)
    assert b64url_decode(b64u(data)) == data


@pytest.mark.parametrize(
    "text",
    [
        "QQ==",  # padding
        "QQ=",
        "QUI=",
        "+/+/",  # standard alphabet
        "ab/c",
        "ab+c",
        " QUJD",  # whitespace
        "QUJD ",
        "QU JD",
        "QUJD\n",
        "QU\tJD",
        "Q",  # 1 mod 4: no byte string encodes to it
        "QUJDR",
        "QR",  # spare bits set: "QQ" is the one spelling of b"A"
        "QUF",  # "QUE" is the one spelling of b"AA"
        "QUJ\u00e9",  # non-ASCII
        "\uff11\uff12",  # fullwidth digits
        "QU.D",
    ],
)
def test_non_canonical_base64url_is_refused(text: str) -> None:
    with pytest.raises(EnvelopeRejected):
        b64url_decode(text)


def test_spare_bit_control() -> None:
    assert b64url_decode("QQ") == b"A"
    assert b64url_decode("QUE") == b"AA"
    assert b64url_decode("-_-_") == b"\xfb\xff\xbf"  # the URL-safe characters, read


# -- the protected header -------------------------------------------------------------------


def test_header_with_allowed_members_parses() -> None:
    header = {"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k1", "typ": "JOSE", "cty": "json"}
    assert parse_header(b64u(json.dumps(header).encode())) == header
    assert set(header) == ALLOWED_HEADER_MEMBERS


@pytest.mark.parametrize(
    "member",
    [
        "zip",
        "crit",
        "jku",
        "jwk",
        "x5u",
        "x5c",
        "x5t",
        "x5t#S256",
        "epk",
        "apu",
        "apv",
        "p2s",
        "p2c",
        "iv",
        "tag",
        "b64",
        "url",
        "nonce",
        "ALG",
        "Kid",
        "",
    ],
)
def test_member_outside_the_allow_list_is_refused(member: str) -> None:
    header = {"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k1", member: "x"}
    with pytest.raises(EnvelopeRejected):
        parse_header(b64u(json.dumps(header).encode()))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"alg":"RSA-OAEP","alg":"RSA-OAEP","enc":"A256GCM","kid":"k1"}',
        b'{"alg":"RSA1_5","enc":"A256GCM","kid":"k1","\\u0061lg":"RSA-OAEP"}',
        b'{"alg":"RSA-OAEP","enc":"A256GCM","kid":"k1","kid":"k2"}',
        b'{"alg":"RSA-OAEP","enc":"A256GCM","kid":1}',
        b'{"alg":"RSA-OAEP","enc":"A256GCM","kid":null}',
        b'{"alg":"RSA-OAEP","enc":"A256GCM","kid":""}',
        b'{"alg":"RSA-OAEP","enc":"A256GCM","kid":"k1","typ":NaN}',
        b'{"alg":"RSA-OAEP","enc":"A256GCM","kid":"k1","typ":{"a":"b"}}',
        b'["alg","RSA-OAEP"]',
        b'"RSA-OAEP"',
        b"null",
        b"",
        b"{",
        b"alg=RSA-OAEP",
        b'{"alg":"RSA-OAEP","enc":"A256GCM","kid":"\xff"}',
        b'\xef\xbb\xbf{"alg":"RSA-OAEP","enc":"A256GCM","kid":"k1"}',
        json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k1"}).encode("utf-16"),
        b"[" * 1000,
        b"{" * 1000,
    ],
)
def test_malformed_header_is_refused(raw: bytes) -> None:
    with pytest.raises(EnvelopeRejected):
        parse_header(b64u(raw))


def _header_of(size: int) -> bytes:
    empty = json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k1", "typ": ""}).encode()
    pad = "x" * (size - len(empty))
    raw = json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k1", "typ": pad}).encode()
    assert len(raw) == size
    return raw


def test_header_size_limit_is_exact() -> None:
    assert MAX_PROTECTED_HEADER_BYTES == 1024
    assert parse_header(b64u(_header_of(1024)))["kid"] == "k1"
    with pytest.raises(EnvelopeRejected):
        parse_header(b64u(_header_of(1025)))


# -- the compact form -----------------------------------------------------------------------


def test_valid_compact_parses_into_its_parts() -> None:
    token = compact()
    jwe = parse(token)
    assert (jwe.alg, jwe.enc, jwe.kid) == ("RSA-OAEP", ALLOWED_ENC, "k1")
    assert jwe.protected_b64 == token.split(".")[0].encode()  # the AAD, exactly as sent
    assert jwe.encrypted_key == b"K" * 512
    assert (jwe.iv, jwe.ciphertext, jwe.tag) == (b"I" * 12, b"C" * 40, b"T" * 16)
    assert parse(token.encode()) == jwe
    assert parse(compact(ciphertext=b"")).ciphertext == b""


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "k1"},  # not in allowed_algs here
        {"alg": "RSA1_5", "enc": "A256GCM", "kid": "k1"},
        {"alg": "dir", "enc": "A256GCM", "kid": "k1"},
        {"alg": "none", "enc": "A256GCM", "kid": "k1"},
        {"alg": "RSA-OAEP", "enc": "A128GCM", "kid": "k1"},
        {"alg": "RSA-OAEP", "enc": "A256CBC-HS512", "kid": "k1"},
        {"alg": "RSA-OAEP", "enc": "a256gcm", "kid": "k1"},
        {"enc": "A256GCM", "kid": "k1"},
        {"alg": "RSA-OAEP", "kid": "k1"},
        {"alg": "RSA-OAEP", "enc": "A256GCM"},
    ],
)
def test_algorithm_encryption_and_kid_are_required_and_allow_listed(
    header: dict[str, Any],
) -> None:
    rejected(compact(header))


def test_allowed_algs_come_from_the_caller() -> None:
    token = compact({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "k1"})
    assert parse_compact(token, max_bytes=65536, allowed_algs=("RSA-OAEP-256",)).alg == (
        "RSA-OAEP-256"
    )
    rejected(token)
    with pytest.raises(EnvelopeRejected):
        parse_compact(compact(), max_bytes=65536, allowed_algs=())


@pytest.mark.parametrize(
    "change",
    [
        {"iv": b"I" * 8},
        {"iv": b"I" * 16},
        {"iv": b""},
        {"tag": b"T" * 15},
        {"tag": b"T" * 12},
        {"tag": b"T" * 17},
        {"tag": b""},
        {"encrypted_key": b""},
    ],
    ids=["iv8", "iv16", "iv0", "tag15", "tag12", "tag17", "tag0", "no-key"],
)
def test_part_lengths(change: dict[str, bytes]) -> None:
    rejected(compact(**change))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.rsplit(".", 1)[0],
        lambda t: t + ".AAAA",
        lambda t: t + ".",
        lambda t: "." + t,
        lambda t: t.replace(".", "..", 1),
        lambda t: t.replace(".", ""),
        lambda t: json.dumps({"protected": t.split(".")[0]}),
        lambda t: t + "=",
        lambda t: t.replace(".", "=.", 1),
        lambda t: " " + t,
        lambda t: t + "\n",
        lambda t: t.encode()[:-2] + b"\xc3\xa9",
    ],
    ids=[
        "4 parts",
        "6 parts",
        "trailing dot",
        "leading dot",
        "empty part",
        "1 part",
        "JSON",
        "padding at the end",
        "padding on the header",
        "leading space",
        "trailing newline",
        "non-ASCII bytes",
    ],
)
def test_structure(mangle: Any) -> None:
    rejected(mangle(compact()))


def test_input_size_limit_counts_before_decoding() -> None:
    token = compact()
    assert parse(token, max_bytes=len(token)).kid == "k1"
    rejected(token, max_bytes=len(token) - 1)
    rejected(token.encode(), max_bytes=len(token) - 1)
    rejected(token + "?" * 100_000)  # refused on length, not on the bad characters
