"""Wycheproof RSAES-OAEP vectors through the HSM path: each group's private key is loaded into
the test token as a session object, and every ciphertext goes through
`HsmToken.rsa_oaep_decrypt`, the call `KeyLayer.decrypt_key_block` makes.

JWE always uses the empty OAEP label, and SoftHSM 2.6.1 ignores the label parameter, so the
tests with a non-empty `label` (flag `EncryptionWithLabel`) are out of scope: they are counted
and left out. SHA-1/MGF1-SHA-1 is JWE `RSA-OAEP`; SHA-256/MGF1-SHA-256 is `RSA-OAEP-256`, which
SoftHSM 2.6.1 refuses (`CKR_ARGUMENTS_BAD` for any hash but SHA-1): on such a token the key
layer must not advertise it; on a token that has it, its vectors must pass too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from sharelock.keys import DecryptionFailed, KeyLayer, UnsupportedAlgorithm
from sharelock.keys._token import HsmToken, OaepHash
from tests.support.vectors import load, rsa_numbers_from_hex

SHA1_FILES = {
    # file: (valid with the empty label, valid with a label (left out), invalid)
    "rsa_oaep_2048_sha1_mgf1sha1_test.json": (10, 7, 19),
    "derived_rsa_oaep_4096_sha1_mgf1sha1_from_misc.json": (3, 0, 0),
}
SHA256_FILES = {
    "rsa_oaep_2048_sha256_mgf1sha256_test.json": (10, 8, 19),
    "rsa_oaep_4096_sha256_mgf1sha256_test.json": (10, 8, 19),
}
HASHES: dict[OaepHash, str] = {"sha1": "SHA-1", "sha256": "SHA-256"}


@contextmanager
def session_key(token: HsmToken, label: str, group: dict[str, Any]) -> Iterator[str]:
    token.import_session_rsa_private_key(label, rsa_numbers_from_hex(group["privateKey"]))
    try:
        yield label
    finally:
        assert token.destroy(label) == 1


def run_file(token: HsmToken, name: str, oaep_hash: OaepHash) -> Counter[str]:
    """Every test of the file through the token; returns what happened, by kind."""
    seen: Counter[str] = Counter()
    document = load(name)
    for index, group in enumerate(document["testGroups"]):
        assert (group["sha"], group["mgf"], group["mgfSha"]) == (
            HASHES[oaep_hash],
            "MGF1",
            HASHES[oaep_hash],
        )
        with session_key(token, f"vectors-oaep-{index}-{name}", group) as label:
            for test in group["tests"]:
                if test["label"]:
                    seen[f"{test['result']} with label: left out"] += 1
                    continue
                try:
                    clear = token.rsa_oaep_decrypt(label, bytes.fromhex(test["ct"]), oaep_hash)
                except (DecryptionFailed, UnsupportedAlgorithm) as exc:
                    seen[f"{test['result']}: {type(exc).__name__}: {exc}"] += 1
                else:
                    right = clear == bytes.fromhex(test["msg"])
                    seen[f"{test['result']}: {'right' if right else 'WRONG'} message"] += 1
    assert seen.total() == document["numberOfTests"]
    return seen


@pytest.mark.parametrize("name", sorted(SHA1_FILES))
def test_sha1_vectors_through_the_hsm(key_layer: KeyLayer, name: str) -> None:
    valid, labelled, invalid = SHA1_FILES[name]
    seen = run_file(key_layer.token, name, "sha1")
    expected = Counter(
        {
            "valid: right message": valid,
            "valid with label: left out": labelled,
            # One type, one message, whatever was wrong (Manger's attack needs a difference).
            "invalid: DecryptionFailed: decryption failed": invalid,
        }
    )
    assert seen == expected
    assert "RSA-OAEP" in key_layer.algorithms()


@pytest.mark.parametrize("name", sorted(SHA256_FILES))
def test_sha256_vectors_follow_what_the_key_layer_advertises(
    key_layer: KeyLayer, name: str
) -> None:
    valid, labelled, invalid = SHA256_FILES[name]
    seen = run_file(key_layer.token, name, "sha256")
    if "RSA-OAEP-256" in key_layer.algorithms():
        expected = Counter(
            {
                "valid: right message": valid,
                "valid with label: left out": labelled,
                "invalid: DecryptionFailed: decryption failed": invalid,
            }
        )
    else:
        # SoftHSM 2.6.1: every call, valid or not, is CKR_ARGUMENTS_BAD -> UnsupportedAlgorithm
        # (so the algorithm probe and the token agree, and no RSA-OAEP-256 JWK is published).
        expected = Counter(
            {
                "valid: UnsupportedAlgorithm: the token has no RSA-OAEP with sha256": valid,
                "valid with label: left out": labelled,
                "invalid: UnsupportedAlgorithm: the token has no RSA-OAEP with sha256": invalid,
            }
        )
        assert {k["alg"] for k in key_layer.jwks()["keys"]} == {"RSA-OAEP"}
    assert seen == expected
