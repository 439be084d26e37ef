"""JWE vectors (Wycheproof `json_web_encryption_test.json`, RFC 7516 A.1/A.2, RFC 7520 §5.1/§5.2)
through the broker's own envelope code and a real SoftHSM token holding the vectors' keys.

The vectors' RSA keys go into a second token, `sharelock-vectors`, in the same SoftHSM
configuration as the test token, as session objects labelled like the broker's encryption keys
(`sharelock-enc-<time>`), the RFC 7520 §5.2 key (4096 bits, the broker's own size) newest and
so active. SoftHSM lists tokens once per process, when the module is initialised, so the work
runs in a child process (`python -m tests.support.vectors jwe`) that prints what it observed;
the tests below judge that.

Two views of every vector:
- **as sent**, through `open_envelope`: the broker refuses all of them. The ones it could open
  (RSA-OAEP + A256GCM: Wycheproof 84 and 129, RFC 7516 A.1, RFC 7520 §5.2) are refused only for
  their `kid`: the broker's kid is the key's RFC 7638 thumbprint and it is required, while 84
  and A.1 have no kid and 129 / §5.2 say "samwise.gamgee@hobbiton.example". Every refusal,
  that one included, happens before any HSM call.
- **with the broker's kid**: a JWE cannot be re-made with another kid (the protected header is
  the AES-GCM additional data), so the child runs the pieces `open_envelope` is made of, in its
  order: `parse_compact` (on a copy whose header carries the broker's kid), then
  `KeyLayer.decrypt_key_block`, then `decrypt_content` with the header exactly as sent. Exactly
  the RSA-OAEP(-256 where the token has it) + A256GCM vectors open, with the published
  plaintext; every other one stops at parsing, before the HSM.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from sharelock.config import Settings
from sharelock.keys import init_token
from tests.support.vectors import (
    REPO_ROOT,
    VECTORS_TOKEN_LABEL,
    b64u_encode,
    header_of,
    jwe_vectors,
    load,
)

REJECTED = "rejected: the credential envelope could not be opened"
OPENS_WITH_SHA1 = {"wycheproof-84", "wycheproof-129", "rfc7516_A1", "rfc7520_5_2"}
OPENS_WITH_SHA256 = {"wycheproof-90"}


@pytest.fixture(scope="module")
def observed(settings: Settings) -> dict[str, Any]:
    init_token(settings.model_copy(update={"hsm_token_label": VECTORS_TOKEN_LABEL}))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.vectors",
            "jwe",
            str(settings.state_path),
            VECTORS_TOKEN_LABEL,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr}"
    document: dict[str, Any] = json.loads(done.stdout)
    return document


@pytest.fixture(scope="module")
def vectors() -> dict[str, dict[str, Any]]:
    return {v["id"]: v for v in jwe_vectors()}


def opens(observed: dict[str, Any]) -> set[str]:
    """The vectors the broker must open once given its own kid, for this token."""
    if "RSA-OAEP-256" in observed["algorithms"]:
        return OPENS_WITH_SHA1 | OPENS_WITH_SHA256
    return OPENS_WITH_SHA1


def rfc7638_thumbprint(n: str, e: str) -> str:
    members = json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"))
    return b64u_encode(hashlib.sha256(members.encode()).digest())


def test_the_vectors_keys_are_the_tokens_keys(
    observed: dict[str, Any], vectors: dict[str, dict[str, Any]]
) -> None:
    rfc7520_5_2 = vectors["rfc7520_5_2"]["private"]
    # Six distinct 2048-bit keys (Wycheproof RSA-OAEP, RSA-OAEP-256, RSA1_5, RFC 7520 §5.1,
    # RFC 7516 A.1, A.2) and the 4096-bit RFC 7520 §5.2 key, newest.
    assert [(k["bits"], k["status"]) for k in observed["keys"]] == [(2048, "retiring")] * 6 + [
        (4096, "active")
    ]
    assert observed["keys"][-1]["n"] == rfc7520_5_2["n"]
    published = observed["controlled"]["published"]
    assert published[0]["n"] == rfc7520_5_2["n"]
    assert len(published) == 7
    # The broker's kid is the RFC 7638 thumbprint, not the kid the RFC gives the key.
    assert published[0]["kid"] == rfc7638_thumbprint(rfc7520_5_2["n"], rfc7520_5_2["e"])
    assert published[0]["kid"] == observed["active_kid"] != rfc7520_5_2["kid"]
    # SHA-1 OAEP everywhere; SoftHSM 2.6.1 has nothing else (RSA-OAEP-256 would come first).
    assert observed["algorithms"] in (["RSA-OAEP"], ["RSA-OAEP-256", "RSA-OAEP"])
    assert published[0]["alg"] == observed["algorithms"][0]


def test_every_wycheproof_jwe_as_sent_is_rejected_before_the_hsm(
    observed: dict[str, Any], vectors: dict[str, dict[str, Any]]
) -> None:
    wycheproof = {k: v for k, v in observed["vectors"].items() if k.startswith("wycheproof-")}
    assert len(wycheproof) == 139
    outcomes = Counter(
        (v["as_sent"]["outcome"], v["as_sent"]["hsm_calls"]) for v in wycheproof.values()
    )
    assert outcomes == Counter({(REJECTED, 0): 139})
    # 65 of them are valid JOSE, refused by policy (RSA1_5, A128GCM, CBC-HS, KW, ECDH-ES, dir,
    # zip, and the two openable ones for their kid); 74 are invalid.
    assert Counter(vectors[k]["result"] for k in wycheproof) == Counter(valid=65, invalid=74)


def test_rsa1_5_is_refused_before_any_hsm_call(observed: dict[str, Any]) -> None:
    rsa1_5 = {k: v for k, v in observed["vectors"].items() if v["alg"] == "RSA1_5"}
    # Wycheproof 94-105, 110-120, 122-128 (30), RFC 7516 A.2 and RFC 7520 §5.1.
    assert len(rsa1_5) == 32
    assert sum(1 for v in rsa1_5.values() if v["key_in_token"]) == 32
    for vector_id, entry in rsa1_5.items():
        assert entry["as_sent"] == {"outcome": REJECTED, "hsm_calls": 0}, vector_id
        assert entry["with_broker_kid"] == {"stage": "parse", "hsm_calls": 0}, vector_id


def test_with_the_brokers_kid_exactly_rsa_oaep_a256gcm_opens(
    observed: dict[str, Any], vectors: dict[str, dict[str, Any]]
) -> None:
    expected = opens(observed)
    opened = {
        k for k, v in observed["vectors"].items() if v["with_broker_kid"]["stage"] == "opened"
    }
    assert opened == expected
    for vector_id in expected:
        entry = observed["vectors"][vector_id]
        assert (entry["enc"], entry["alg"] in observed["algorithms"]) == ("A256GCM", True)
        assert entry["with_broker_kid"]["plaintext_hex"] == vectors[vector_id]["pt_hex"]
        assert entry["with_broker_kid"]["hsm_calls"] == 1, vector_id  # the one RSA step
    others = {k: v for k, v in observed["vectors"].items() if k not in expected}
    assert len(others) == 143 - len(expected)
    assert Counter(
        (v["with_broker_kid"]["stage"], v["with_broker_kid"]["hsm_calls"]) for v in others.values()
    ) == Counter({("parse", 0): 143 - len(expected)})


def test_refused_rsa_oaep_vectors_were_refused_by_policy_not_by_the_hsm(
    observed: dict[str, Any],
) -> None:
    """RSA-OAEP with another `enc` (82, 83, 85-87): the HSM decrypts their key block when asked
    directly, so parsing is what refuses them."""
    rsa_oaep = {k: v for k, v in observed["vectors"].items() if v["alg"] == "RSA-OAEP"}
    assert len(rsa_oaep) == 9
    assert {k: v["key_block"] for k, v in rsa_oaep.items()} == {
        k: {"outcome": "decrypted", "hsm_calls": 1} for k in rsa_oaep
    }
    refused = {k for k, v in rsa_oaep.items() if v["with_broker_kid"]["stage"] == "parse"}
    assert refused == {f"wycheproof-{n}" for n in (82, 83, 85, 86, 87)}
    assert {observed["vectors"][k]["enc"] for k in refused} == {
        "A128GCM",
        "A192GCM",
        "A128CBC-HS256",
        "A192CBC-HS384",
        "A256CBC-HS512",
    }


def test_rsa_oaep_256_follows_what_the_token_advertises(observed: dict[str, Any]) -> None:
    """SoftHSM 2.6.1 has no SHA-256 OAEP, so the key layer does not advertise RSA-OAEP-256 and
    refuses its key blocks without calling the HSM; a token with it opens Wycheproof 90."""
    oaep_256 = {k: v for k, v in observed["vectors"].items() if v["alg"] == "RSA-OAEP-256"}
    assert set(oaep_256) == {f"wycheproof-{n}" for n in (88, 89, 90, 91, 92, 93, 121)}
    if "RSA-OAEP-256" in observed["algorithms"]:
        assert oaep_256["wycheproof-90"]["with_broker_kid"]["stage"] == "opened"
        return
    for vector_id, entry in oaep_256.items():
        assert entry["with_broker_kid"] == {"stage": "parse", "hsm_calls": 0}, vector_id
        assert entry["key_block"] == {
            "outcome": "UnsupportedAlgorithm: algorithm not supported by this token",
            "hsm_calls": 0,
        }, vector_id


def test_rfc_examples(observed: dict[str, Any], vectors: dict[str, dict[str, Any]]) -> None:
    examples = load("jose_examples.json")["vectors"]
    assert [e["id"] for e in examples] == ["rfc7516_A1", "rfc7516_A2", "rfc7520_5_1", "rfc7520_5_2"]
    for example in examples:
        entry = observed["vectors"][example["id"]]
        assert entry["as_sent"] == {"outcome": REJECTED, "hsm_calls": 0}, example["id"]
        if example["expected_broker_result"] == "accept":
            # RFC 7516 A.1 (2048 bits) and RFC 7520 §5.2 (4096 bits): the HSM gives back the
            # RFC's content key and the content step the RFC's plaintext.
            assert entry["with_broker_kid"] == {
                "stage": "opened",
                "cek_hex": example["cek_hex"],
                "plaintext_hex": example["plaintext_hex"],
                "hsm_calls": 1,
            }
        else:
            assert example["expected_broker_result"].startswith("reject (alg RSA1_5")
            assert entry["with_broker_kid"] == {"stage": "parse", "hsm_calls": 0}
    # The RFC 7520 §5.2 compact JWE is also Wycheproof's tcId 129.
    assert vectors["rfc7520_5_2"]["jwe"] == vectors["wycheproof-129"]["jwe"]
    assert header_of(vectors["rfc7520_5_2"]["jwe"]) == {
        "alg": "RSA-OAEP",
        "kid": "samwise.gamgee@hobbiton.example",
        "enc": "A256GCM",
    }


def test_rfc7520_5_2_made_for_the_brokers_kid_opens(
    observed: dict[str, Any], vectors: dict[str, dict[str, Any]]
) -> None:
    """The RFC 7520 §5.2 plaintext and content key, encrypted (tests/support/jwe.py) to the key
    the vectors' token publishes, with its kid: `open_envelope` opens it in one HSM call, and
    the same JWE with one tag bit flipped is refused with the one error."""
    controlled = observed["controlled"]
    assert controlled["made"] == {
        "outcome": "opened:" + vectors["rfc7520_5_2"]["pt_hex"],
        "hsm_calls": 1,
    }
    assert controlled["tag_flipped"] == {"outcome": REJECTED, "hsm_calls": 1}
