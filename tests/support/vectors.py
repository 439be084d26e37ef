"""Public test vectors (Project Wycheproof, RFC examples) and the helpers that feed them to
Sharelock, as pyca/cryptography does ("tests driven by public vectors").

The vectors live outside the repository, in `shared/vectors/` beside the repository's folder
(in CI the repository is cloned next to `shared/`). They are read-only and checked against
`SHA256SUMS` when loaded; if the folder is missing the tests fail, they never skip.

This module also runs as a child process, `python -m tests.support.vectors jwe STATE_DIR LABEL`:
SoftHSM lists its tokens once, when the module is initialised in a process, so a token created
after the test process first used the HSM (the JWE vectors' token) is only visible to a new
process. The child loads the vectors' RSA keys into that token, runs every JWE vector through
the broker's code and prints one JSON document of what it observed; the test judges it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
# SHARELOCK_VECTORS_DIR points elsewhere, e.g. for a checkout that is not beside `shared/`.
VECTORS_DIR = Path(
    os.environ.get("SHARELOCK_VECTORS_DIR") or REPO_ROOT / ".." / "shared" / "vectors"
).resolve()

# The label scheme of the key layer's encryption keys (`sharelock.keys.layer`): the newest
# `sharelock-enc-<UTC time>` pair is the active key.
ENC_PREFIX = "sharelock-enc-"
ENC_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"

VECTORS_TOKEN_LABEL = "sharelock-vectors"


class VectorsMissing(AssertionError):
    """The public vectors are not where the tests expect them: a failure, never a skip."""


# -- loading ------------------------------------------------------------------------------


@cache
def _checksums() -> dict[str, str]:
    if not VECTORS_DIR.is_dir():
        raise VectorsMissing(
            f"public test vectors not found at {VECTORS_DIR}: the tests expect the folder "
            "'shared/vectors' beside the repository's folder"
        )
    sums = VECTORS_DIR / "SHA256SUMS"
    if not sums.is_file():
        raise VectorsMissing(f"{sums} is missing: cannot check the vectors")
    found = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest:
            found[name] = digest
    return found


def load(name: str) -> dict[str, Any]:
    """One vector file, parsed, after checking it against `SHA256SUMS`."""
    expected = _checksums().get(name)
    path = VECTORS_DIR / name
    if expected is None:
        raise VectorsMissing(f"{name} is not listed in {VECTORS_DIR / 'SHA256SUMS'}")
    if not path.is_file():
        raise VectorsMissing(f"vector file {path} is missing")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != expected:
        raise VectorsMissing(f"{path} does not match its SHA256SUMS entry")
    document: dict[str, Any] = json.loads(raw)
    return document


def wycheproof_tests(document: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (group, test) of a Wycheproof file, checking `numberOfTests` on the way."""
    count = 0
    for group in document["testGroups"]:
        for test in group["tests"]:
            count += 1
            yield group, test
    if count != document["numberOfTests"]:
        raise AssertionError(f"{count} tests read, the file announces {document['numberOfTests']}")


# -- encodings ----------------------------------------------------------------------------


def b64u_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64u_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned(data: bytes) -> bytes:
    """A big integer without leading zero bytes (Wycheproof writes the modulus with one)."""
    return data.lstrip(b"\x00") or b"\x00"


def rsa_numbers_from_hex(private_key: dict[str, str]) -> dict[str, bytes]:
    """The `privateKey` of a Wycheproof RSA group, as `HsmToken.import_session_rsa_private_key`
    takes it."""
    names = {
        "modulus": "modulus",
        "public_exponent": "publicExponent",
        "private_exponent": "privateExponent",
        "prime1": "prime1",
        "prime2": "prime2",
        "exponent1": "exponent1",
        "exponent2": "exponent2",
        "coefficient": "coefficient",
    }
    return {ours: unsigned(bytes.fromhex(private_key[theirs])) for ours, theirs in names.items()}


def rsa_numbers_from_jwk(jwk: dict[str, str]) -> dict[str, bytes]:
    """A private RSA JWK (RFC 7518 §6.3.2), as `import_session_rsa_private_key` takes it."""
    names = {
        "modulus": "n",
        "public_exponent": "e",
        "private_exponent": "d",
        "prime1": "p",
        "prime2": "q",
        "exponent1": "dp",
        "exponent2": "dq",
        "coefficient": "qi",
    }
    return {ours: unsigned(b64u_decode(jwk[theirs])) for ours, theirs in names.items()}


def header_of(compact: str) -> dict[str, Any] | None:
    """The protected header of a compact JWE, read leniently (for sorting vectors only)."""
    try:
        value = json.loads(b64u_decode(compact.split(".", 1)[0]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


# -- JWE vectors through the broker, in a child process -----------------------------------


def jwe_vectors() -> list[dict[str, Any]]:
    """Every JWE vector, from Wycheproof and from `jose_examples.json`, in one shape:
    `id`, `jwe` (string as sent), `private` (the decryption JWK), `pt_hex`, `cek_hex`."""
    found: list[dict[str, Any]] = []
    wycheproof = load("json_web_encryption_test.json")
    for group, test in wycheproof_tests(wycheproof):
        jwe = test["jwe"]
        found.append(
            {
                "id": f"wycheproof-{test['tcId']}",
                "jwe": jwe if isinstance(jwe, str) else json.dumps(jwe),
                "private": group["private"],
                "pt_hex": test.get("pt"),
                "cek_hex": None,
                "result": test["result"],
            }
        )
    for example in load("jose_examples.json")["vectors"]:
        found.append(
            {
                "id": example["id"],
                "jwe": example["compact_jwe"],
                "private": example["private_jwk"],
                "pt_hex": example["plaintext_hex"],
                "cek_hex": example["cek_hex"],
                "result": example["expected_broker_result"],
            }
        )
    return found


def rsa_keys_of(vectors: list[dict[str, Any]], active_n: str) -> list[dict[str, str]]:
    """The distinct RSA private JWKs of the vectors, the one with modulus `active_n` last."""
    keys: dict[str, dict[str, str]] = {}
    for vector in vectors:
        jwk = vector["private"]
        if jwk.get("kty") == "RSA" and "d" in jwk:
            keys.setdefault(jwk["n"], jwk)
    if active_n not in keys:
        raise AssertionError("the key meant to be active is not among the vectors' keys")
    return [jwk for n, jwk in keys.items() if n != active_n] + [keys[active_n]]


def _outcome(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _observe_jwe(state_dir: Path, token_label: str) -> dict[str, Any]:
    from sharelock.config import Settings
    from sharelock.envelope import (
        EnvelopeRejected,
        decrypt_content,
        open_envelope,
        parse_compact,
    )
    from sharelock.envelope.compact import parse_header
    from sharelock.keys import OAEP_ALGORITHMS, KeyLayer
    from tests.support.jwe import build

    settings = Settings(state_dir=state_dir, hsm_token_label=token_label)
    layer = KeyLayer(settings)
    token = layer.token
    vectors = jwe_vectors()
    rfc7520_5_2 = next(v for v in vectors if v["id"] == "rfc7520_5_2")
    keys = rsa_keys_of(vectors, active_n=rfc7520_5_2["private"]["n"])

    # Oldest first, one second apart, the RFC 7520 §5.2 key newest (so: active).
    start = datetime.now(UTC) - timedelta(seconds=len(keys))
    for index, jwk in enumerate(keys):
        label = ENC_PREFIX + (start + timedelta(seconds=index)).strftime(ENC_TIME_FORMAT)
        numbers = rsa_numbers_from_jwk(jwk)
        token.import_session_rsa_private_key(label, numbers)
        token.import_session_rsa_public_key(label, numbers["modulus"], numbers["public_exponent"])
    layer.refresh()
    algorithms = layer.algorithms()  # the probe's HSM calls happen here, before any count
    inventory = layer.encryption_keys()
    kid_by_n = {b64u_encode(k.public.modulus): k.kid for k in inventory}
    active_kid = layer.active_key().kid

    def as_sent(jwe: str) -> dict[str, Any]:
        before = token.calls
        try:
            with open_envelope(jwe, layer) as opened:
                outcome = "opened:" + bytes(opened.view()).hex()
        except EnvelopeRejected as exc:
            outcome = "rejected: " + str(exc)
        except Exception as exc:  # recorded, and failed by the test
            outcome = _outcome(exc)
        return {"outcome": outcome, "hsm_calls": token.calls - before}

    def with_broker_kid(jwe: str, kid: str) -> dict[str, Any]:
        """The pieces `open_envelope` is made of, with the broker's kid for the vector's key:
        a JWE cannot be re-made with another kid (its header is the AES-GCM additional
        data), so `parse_compact` reads a copy whose header carries `kid`, and the content
        step then gets the header exactly as sent."""
        before = token.calls
        result: dict[str, Any] = {}
        try:
            protected = jwe.split(".", 1)[0]
            header = parse_header(protected)  # the broker's strict header check
            rewritten = b64u_encode(json.dumps({**header, "kid": kid}).encode())
            parsed = parse_compact(
                rewritten + jwe[len(protected) :],
                max_bytes=settings.max_envelope_bytes,
                allowed_algs=algorithms,
            )
            parsed = replace(parsed, protected_b64=protected.encode("ascii"))
        except EnvelopeRejected:
            result["stage"] = "parse"
        else:
            try:
                cek = layer.decrypt_key_block(kid, parsed.alg, parsed.encrypted_key)
            except Exception as exc:
                result["stage"] = "key block"
                result["error"] = _outcome(exc)
            else:
                result["cek_hex"] = cek.hex()
                try:
                    result["plaintext_hex"] = bytes(decrypt_content(cek, parsed)).hex()
                    result["stage"] = "opened"
                except EnvelopeRejected:
                    result["stage"] = "content"
        result["hsm_calls"] = token.calls - before
        return result

    def direct_key_block(jwe: str, kid: str, alg: str) -> dict[str, Any]:
        before = token.calls
        try:
            layer.decrypt_key_block(kid, alg, b64u_decode(jwe.split(".")[1]))
            outcome = "decrypted"
        except Exception as exc:
            outcome = _outcome(exc)
        return {"outcome": outcome, "hsm_calls": token.calls - before}

    observed: dict[str, Any] = {}
    for vector in vectors:
        jwe = vector["jwe"]
        jwk = vector["private"]
        kid = kid_by_n.get(jwk.get("n", ""), active_kid)
        header = header_of(jwe)
        entry: dict[str, Any] = {
            "alg": header.get("alg") if header else None,
            "enc": header.get("enc") if header else None,
            "kid_in_header": header.get("kid") if header else None,
            "kty": jwk["kty"],
            "key_in_token": jwk.get("n") in kid_by_n,
            "as_sent": as_sent(jwe),
            "with_broker_kid": with_broker_kid(jwe, kid),
        }
        if entry["alg"] in OAEP_ALGORITHMS:
            entry["key_block"] = direct_key_block(jwe, kid, entry["alg"])
        observed[vector["id"]] = entry

    # RFC 7520 §5.2 again, made for the kid the broker publishes (with the RFC's CEK).
    published = layer.jwks()["keys"]
    plaintext = bytes.fromhex(rfc7520_5_2["pt_hex"])
    made = build(
        published[0],
        plaintext,
        alg=published[0]["alg"],
        cek=bytes.fromhex(rfc7520_5_2["cek_hex"]),
    )
    flipped = bytearray(b64u_decode(made.tag))
    flipped[0] ^= 0x01
    tampered = made.with_(tag=b64u_encode(bytes(flipped)))
    controlled = {
        "published": [{"kid": k["kid"], "alg": k["alg"], "n": k["n"]} for k in published],
        "made": as_sent(made.compact()),
        "tag_flipped": as_sent(tampered.compact()),
    }
    layer.close()
    return {
        "algorithms": list(algorithms),
        "keys": [
            {"kid": k.kid, "status": k.status, "bits": k.modulus_bits, "n": kid_n}
            for k in inventory
            for kid_n in [b64u_encode(k.public.modulus)]
        ],
        "active_kid": active_kid,
        "vectors": observed,
        "controlled": controlled,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "jwe":
        sys.stderr.write("usage: python -m tests.support.vectors jwe STATE_DIR TOKEN_LABEL\n")
        return 2
    sys.stdout.write(json.dumps(_observe_jwe(Path(argv[1]), argv[2])) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
