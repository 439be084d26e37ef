"""Wycheproof AES-GCM vectors through the envelope's content step (`decrypt_content`, the
A256GCM half of `open_envelope`), and the lengths RFC 7518 §5.3 allows for A256GCM: a 96-bit
IV and a 128-bit tag, checked by `parse_compact` before any key is touched."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from sharelock.envelope import CompactJwe, EnvelopeRejected, decrypt_content, parse_compact
from tests.support.vectors import b64u_encode, load, wycheproof_tests

HEADER = b64u_encode(json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "k"}).encode())
ENCRYPTED_KEY = b64u_encode(bytes(range(256)))
ALGS = ("RSA-OAEP",)


def a256gcm_vectors() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (group, test)
        for group, test in wycheproof_tests(load("aes_gcm_test.json"))
        if group["keySize"] == 256
    ]


def as_jwe(test: dict[str, Any]) -> CompactJwe:
    return CompactJwe(
        protected_b64=bytes.fromhex(test["aad"]),  # the additional data, whatever it holds
        alg="RSA-OAEP",
        enc="A256GCM",
        kid="k",
        encrypted_key=b"\x01" * 256,
        iv=bytes.fromhex(test["iv"]),
        ciphertext=bytes.fromhex(test["ct"]),
        tag=bytes.fromhex(test["tag"]),
    )


def compact(iv: bytes, ciphertext: bytes, tag: bytes) -> str:
    return ".".join(
        (HEADER, ENCRYPTED_KEY, b64u_encode(iv), b64u_encode(ciphertext), b64u_encode(tag))
    )


def test_a256gcm_subset_through_the_content_step() -> None:
    seen: Counter[str] = Counter()
    for group, test in a256gcm_vectors():
        if (group["ivSize"], group["tagSize"]) != (96, 128):
            continue
        try:
            clear = decrypt_content(bytes.fromhex(test["key"]), as_jwe(test))
        except EnvelopeRejected as exc:
            seen[f"{test['result']}: rejected: {exc}"] += 1
        else:
            right = bytes(clear) == bytes.fromhex(test["msg"])
            seen[f"{test['result']}: {'right' if right else 'WRONG'} plaintext"] += 1
    assert seen == Counter(
        {
            "valid: right plaintext": 39,
            "invalid: rejected: the credential envelope could not be opened": 27,
        }
    )


def test_parse_compact_accepts_the_subsets_lengths() -> None:
    """The control for the next two tests: 96-bit IVs and 128-bit tags parse."""
    subset = [t for g, t in a256gcm_vectors() if (g["ivSize"], g["tagSize"]) == (96, 128)]
    assert len(subset) == 66
    for test in subset:
        iv, ct, tag = (bytes.fromhex(test[k]) for k in ("iv", "ct", "tag"))
        jwe = parse_compact(compact(iv, ct, tag), max_bytes=1 << 20, allowed_algs=ALGS)
        assert (jwe.iv, jwe.ciphertext, jwe.tag) == (iv, ct, tag)


def test_parse_compact_rejects_ivs_that_are_not_96_bits() -> None:
    """Every 256-bit-key Wycheproof vector with another IV size (0 to 2056 bits), even the
    `valid` ones: RFC 7518 §5.3 fixes the IV of A256GCM at 96 bits."""
    others = [(g, t) for g, t in a256gcm_vectors() if g["ivSize"] != 96]
    sizes = Counter(g["ivSize"] for g, _ in others)
    assert sizes == Counter(
        {0: 2, 8: 2, 16: 2, 32: 2, 48: 2, 64: 2, 80: 2, 120: 1, 128: 19, 160: 1, 256: 1}
        | {512: 1, 1024: 1, 2056: 1}
    )
    for group, test in others:
        iv, ct, tag = (bytes.fromhex(test[k]) for k in ("iv", "ct", "tag"))
        assert len(iv) * 8 == group["ivSize"]
        with pytest.raises(EnvelopeRejected):
            parse_compact(compact(iv, ct, tag), max_bytes=1 << 20, allowed_algs=ALGS)


@pytest.mark.parametrize("tag_bytes", [0, 1, 4, 8, 12, 15, 17, 20, 32])
def test_parse_compact_rejects_tags_that_are_not_128_bits(tag_bytes: int) -> None:
    """Wycheproof's tags are all 128 bits; shortened (as a truncating implementation would
    send) or lengthened, they must not reach the content step."""
    _, test = next((g, t) for g, t in a256gcm_vectors() if g["ivSize"] == 96)
    iv, ct, tag = (bytes.fromhex(test[k]) for k in ("iv", "ct", "tag"))
    resized = (tag * 3)[:tag_bytes]
    with pytest.raises(EnvelopeRejected):
        parse_compact(compact(iv, ct, resized), max_bytes=1 << 20, allowed_algs=ALGS)
