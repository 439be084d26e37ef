"""HMAC-SHA256 known answers through the HSM: Wycheproof `hmac_sha256_test.json` and Vault's audit
pseudonyms (`hmac-sha256:<hex>`, the format of `KeyLayer.keyed_hash`), each key loaded into the
test token as a session object and every tag computed by `HsmToken.hmac_sha256`.

SoftHSM 2.6.1 refuses `CKM_SHA256_HMAC` with a key shorter than 32 bytes (`CKR_KEY_SIZE_RANGE`,
which the token layer reports as `DecryptionFailed`). The broker's own audit key is 32 bytes, so
that limit does not touch it, but it does touch 6 Wycheproof keys (16 bytes) and Vault's key
"foo". Those are not skipped: the refusal is counted exactly, and then the same HMAC is
computed with the key zero-padded to 32 bytes, which RFC 2104 §2 makes the same function (a key
shorter than the 64-byte block is padded with zeros to the block size before use; the test
checks that equivalence with Python's `hmac` too).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from sharelock.keys import DecryptionFailed, KeyLayer
from sharelock.keys._token import HsmToken
from tests.support.vectors import load

SOFTHSM_MIN_HMAC_KEY_BYTES = 32
HMAC_BLOCK_BYTES = 64


@contextmanager
def session_hmac_key(token: HsmToken, label: str, key: bytes) -> Iterator[str]:
    token.import_session_secret(label, key, "hmac")
    try:
        yield label
    finally:
        assert token.destroy(label) == 1


def tag_in_token(token: HsmToken, label: str, key: bytes, message: bytes) -> bytes:
    with session_hmac_key(token, label, key):
        return token.hmac_sha256(label, message)


def same_hmac_longer_key(key: bytes) -> bytes:
    """The RFC 2104 equivalent of a short key that SoftHSM accepts (zero padding)."""
    assert len(key) < SOFTHSM_MIN_HMAC_KEY_BYTES <= HMAC_BLOCK_BYTES
    padded = key.ljust(SOFTHSM_MIN_HMAC_KEY_BYTES, b"\x00")
    probe = b"the same function"
    assert (
        hmac.new(key, probe, hashlib.sha256).digest()
        == hmac.new(padded, probe, hashlib.sha256).digest()
    )
    return padded


def test_wycheproof_hmac_sha256(key_layer: KeyLayer) -> None:
    token = key_layer.token
    document = load("hmac_sha256_test.json")
    seen: Counter[str] = Counter()
    for group in document["testGroups"]:
        tag_bytes = group["tagSize"] // 8
        for test in group["tests"]:
            key, message = bytes.fromhex(test["key"]), bytes.fromhex(test["msg"])
            label = f"vectors-hmac-{test['tcId']}"
            assert len(key) * 8 == group["keySize"]
            try:
                tag = tag_in_token(token, label, key, message)
            except DecryptionFailed:
                seen[f"{test['result']}: refused, {len(key)}-byte key"] += 1
                tag = tag_in_token(token, label, same_hmac_longer_key(key), message)
            matches = hmac.compare_digest(tag[:tag_bytes], bytes.fromhex(test["tag"]))
            seen[f"{test['result']}: {'matches' if matches else 'differs'}"] += 1
    assert seen == Counter(
        {
            "valid: matches": 66,
            "invalid: differs": 108,
            # SoftHSM 2.6.1's 32-byte minimum: the 6 tests with 16-byte keys (all valid), each
            # then matched with its zero-padded key above.
            "valid: refused, 16-byte key": 6,
        }
    )
    assert document["numberOfTests"] == 174


def test_vault_audit_pseudonyms(key_layer: KeyLayer) -> None:
    token = key_layer.token
    vectors = load("vault_audit_hmac_vectors.json")["vectors"]
    assert len(vectors) == 3
    assert {v["salt_utf8"] for v in vectors} == {"foo"}
    key = b"foo"
    seen: Counter[str] = Counter()
    for vector in vectors:
        message = vector["input"].encode()
        try:
            tag = tag_in_token(token, "vectors-vault-audit", key, message)
        except DecryptionFailed:
            seen["refused, 3-byte key"] += 1
            tag = tag_in_token(token, "vectors-vault-audit", same_hmac_longer_key(key), message)
        # Formatted as `KeyLayer.keyed_hash` formats its audit pseudonyms.
        seen["matches" if "hmac-sha256:" + tag.hex() == vector["output"] else "differs"] += 1
    # SoftHSM 2.6.1 refuses the 3-byte key each time; its zero-padded twin gives Vault's values.
    assert seen == Counter({"matches": 3, "refused, 3-byte key": 3})
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", key_layer.keyed_hash(b"foo"))
