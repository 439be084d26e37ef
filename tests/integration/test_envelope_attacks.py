"""SECURITY-CHECKLIST section A, cases 1-16, answered by the envelope and the key layer alone
(the real SoftHSM token of the test session; no mock).

Every refusal must be the same `EnvelopeRejected` with the same message; a refusal the parser
can make must cost no HSM call (`key_layer.token.calls` unchanged); one only the cryptography
can make costs exactly one RSA decryption. Replay (case 17) belongs to the flow layer.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import traceback
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from sharelock.envelope import EnvelopeRejected, OpenedSecret, open_envelope
from sharelock.keys import KeyLayer, UnsupportedAlgorithm
from tests.support.envelope_cases import CASES, GENERIC_MESSAGE, b64d, header
from tests.support.jwe import b64u, build

CREDENTIALS = {"login": 128, "password": 128}
MESSAGE = {"login": "alice@example.test", "password": "correct horse battery staple"}
PLAINTEXT = json.dumps(MESSAGE).encode()


@pytest.fixture(scope="module")
def layer(key_layer: KeyLayer) -> KeyLayer:
    """The session's key layer with its caches filled (algorithm probe, key list), so that
    the call counter only moves for envelope work."""
    key_layer.algorithms()
    key_layer.encryption_keys()
    return key_layer


def reject(token: str | bytes, layer: KeyLayer, **kwargs: Any) -> tuple[EnvelopeRejected, int]:
    """Open `token`, which must be refused; return the error and the HSM calls it cost."""
    before = layer.token.calls
    with pytest.raises(EnvelopeRejected) as info, open_envelope(token, layer, **kwargs):
        pass
    return info.value, layer.token.calls - before


def assert_generic(exc: BaseException) -> None:
    """The one external error: same type, same text, nothing chained."""
    assert type(exc) is EnvelopeRejected
    assert exc.args == (GENERIC_MESSAGE,)
    assert traceback.format_exception_only(exc) == [
        f"sharelock.envelope.errors.EnvelopeRejected: {GENERIC_MESSAGE}\n"
    ]
    assert exc.__cause__ is None


def opens(token: str | bytes, layer: KeyLayer, **kwargs: Any) -> dict[str, str]:
    with open_envelope(token, layer, **kwargs) as opened:
        return opened.json_object(CREDENTIALS)


# -- 1. the valid envelope ------------------------------------------------------------------


def test_valid_rsa_oaep_a256gcm_opens_with_one_hsm_call(
    layer: KeyLayer, enc_jwk: dict[str, Any]
) -> None:
    assert enc_jwk["alg"] in layer.algorithms()
    before = layer.token.calls
    assert opens(build(enc_jwk, PLAINTEXT).compact(), layer) == MESSAGE
    assert layer.token.calls - before == 1


@pytest.mark.parametrize(
    "extra", [{}, {"typ": "JOSE"}, {"cty": "application/json"}], ids=["plain", "typ", "cty"]
)
def test_valid_envelope_with_allowed_members_and_as_bytes(
    layer: KeyLayer, enc_jwk: dict[str, Any], extra: dict[str, str]
) -> None:
    token = build(enc_jwk, PLAINTEXT, header=header(enc_jwk, **extra)).compact()
    assert opens(token, layer) == MESSAGE
    assert opens(token.encode("ascii"), layer) == MESSAGE


def test_every_catalogue_case_is_derived_from_an_envelope_that_opens(
    layer: KeyLayer, enc_jwk: dict[str, Any]
) -> None:
    """Control for the catalogue below: the builder itself makes envelopes that open, so each
    refusal is due to the attack, not to a broken builder."""
    for _ in range(3):
        assert opens(build(enc_jwk, PLAINTEXT).compact(), layer) == MESSAGE


# -- 3-15. the catalogue: one answer for all ------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_attack_is_refused_with_the_generic_error(
    layer: KeyLayer, enc_jwk: dict[str, Any], name: str
) -> None:
    case = CASES[name]
    exc, calls = reject(case.make(enc_jwk, PLAINTEXT), layer)
    assert_generic(exc)
    assert calls == (1 if case.reaches_hsm else 0), "HSM calls before the refusal"


def test_tag_and_key_block_failures_are_indistinguishable(
    layer: KeyLayer, enc_jwk: dict[str, Any]
) -> None:
    """Cases 6 and 8: a bad tag and a bad RSA block take the same path (one HSM call, then the
    AES-GCM tag check with whatever key came out) and give byte-identical errors."""
    answers = []
    for name in (
        "tag first bit flipped",
        "encrypted key: random bytes",
        "encrypted key: first bit flipped",
        "encrypted key: all 0xff (above the modulus)",
        "CEK of 16 bytes",
        "header respelled (same members)",
    ):
        exc, calls = reject(CASES[name].make(enc_jwk, PLAINTEXT), layer)
        answers.append((type(exc), exc.args, traceback.format_exception_only(exc), calls))
    assert all(answer == answers[0] for answer in answers), answers


# -- 2. RSA-OAEP-256 ------------------------------------------------------------------------


def _softhsm_version() -> str:
    return subprocess.run(
        ["softhsm2-util", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_rsa_oaep_256_on_softhsm_2_6_is_refused_without_token_detail(
    layer: KeyLayer, enc_jwk: dict[str, Any], all_logs: pytest.LogCaptureFixture
) -> None:
    if not _softhsm_version().startswith("2.6."):
        pytest.skip("SoftHSM 2.6 lacks OAEP with SHA-256; this SoftHSM may have it")
    # The probe found SHA-1 only, so only RSA-OAEP is advertised.
    assert layer.algorithms() == ("RSA-OAEP",)
    assert {k["alg"] for k in layer.jwks()["keys"]} == {"RSA-OAEP"}

    token = build(enc_jwk, PLAINTEXT, alg="RSA-OAEP-256").compact()
    exc, calls = reject(token, layer)
    assert_generic(exc)
    assert calls == 0  # not advertised: refused before the HSM

    # Below the envelope the token itself refuses, as an UnsupportedAlgorithm that carries
    # nothing of PKCS#11 (CKR_ARGUMENTS_BAD is what SoftHSM answers).
    key = layer.active_key()
    block = b64d(token.split(".")[1])
    with pytest.raises(UnsupportedAlgorithm) as direct:
        layer.token.rsa_oaep_decrypt(key.label, block, "sha256")
    with pytest.raises(UnsupportedAlgorithm) as via_layer:
        layer.decrypt_key_block(key.kid, "RSA-OAEP-256", block)
    texts = [all_logs.text]
    for error in (exc, direct.value, via_layer.value):
        texts += [str(error), repr(error), *traceback.format_exception(error)]
    for text in texts:
        for needle in ("ArgumentsBad", "ARGUMENTS_BAD", "CKR_"):
            assert needle not in text


def test_rsa_oaep_256_follows_what_the_token_can_do(
    layer: KeyLayer, enc_jwk: dict[str, Any]
) -> None:
    """Accepted exactly when the token's probe found SHA-256 OAEP (checklist: "With an HSM that
    supports SHA-256 -> accepted")."""
    token = build(enc_jwk, PLAINTEXT, alg="RSA-OAEP-256").compact()
    if "RSA-OAEP-256" in layer.algorithms():
        assert opens(token, layer) == MESSAGE
    else:
        assert_generic(reject(token, layer)[0])


# -- 3. RSA1_5 ------------------------------------------------------------------------------


def test_rsa1_5_is_refused_like_a_bad_tag_and_before_the_hsm(
    layer: KeyLayer, enc_jwk: dict[str, Any]
) -> None:
    rsa1_5, calls = reject(CASES["alg RSA1_5"].make(enc_jwk, PLAINTEXT), layer)
    bad_tag, _ = reject(CASES["tag first bit flipped"].make(enc_jwk, PLAINTEXT), layer)
    assert calls == 0
    assert (type(rsa1_5), rsa1_5.args) == (type(bad_tag), bad_tag.args)


# -- 4. other algorithms: no work done ------------------------------------------------------

EXPENSIVE_OR_FOREIGN = [
    "enc A128GCM",
    "enc A256CBC-HS512",
    "alg dir",
    "alg none",
    "alg ECDH-ES",
    "alg ECDH-ES with epk",
    "alg A256KW",
    "alg PBES2 p2c=1e9",
    "alg PBES2 (no p2c)",
]


def test_foreign_algorithms_are_refused_at_once(layer: KeyLayer, enc_jwk: dict[str, Any]) -> None:
    """PBKDF2 with 10^9 iterations would take minutes, an ECDH agreement milliseconds: the
    refusal must come before any of it. A generous bound, not a timing measurement."""
    tokens = [CASES[name].make(enc_jwk, PLAINTEXT) for name in EXPENSIVE_OR_FOREIGN]
    before = layer.token.calls
    started = time.perf_counter()
    for token in tokens:
        with pytest.raises(EnvelopeRejected):
            open_envelope(token, layer)
    assert time.perf_counter() - started < 0.5
    assert layer.token.calls == before


# -- 7. the protected header is the AAD -----------------------------------------------------


def test_header_is_authenticated_as_sent(layer: KeyLayer, enc_jwk: dict[str, Any]) -> None:
    """Control for "header respelled": the same respelled header opens when the envelope is
    sealed with it, so the refusal above comes from the AAD check alone."""
    raw = json.dumps(header(enc_jwk), separators=(",", ":"), sort_keys=True).encode()
    assert opens(build(enc_jwk, PLAINTEXT, raw_header=raw).compact(), layer) == MESSAGE


# -- 9. key block length --------------------------------------------------------------------


def test_key_block_of_the_modulus_length_is_the_only_length_sent_to_the_hsm(
    layer: KeyLayer, enc_jwk: dict[str, Any]
) -> None:
    parts = build(enc_jwk, PLAINTEXT)
    block = b64d(parts.encrypted_key)
    assert len(block) == 512 == len(layer.active_key().public.modulus)
    for bad in (b"", block[1:], block + b"\0", b"\0" + block, block[:256]):
        exc, calls = reject(parts.with_(encrypted_key=b64u(bad)).compact(), layer)
        assert_generic(exc)
        assert calls == 0


# -- 10. CEK length -------------------------------------------------------------------------


def test_a_16_byte_cek_labelled_a256gcm_is_not_used_as_aes_128(
    layer: KeyLayer, enc_jwk: dict[str, Any]
) -> None:
    """support/jwe.py seals the content with AES-128-GCM under the 16-byte CEK: an opener that
    trusted the unwrapped length would open it."""
    exc, calls = reject(build(enc_jwk, PLAINTEXT, cek=os.urandom(16)).compact(), layer)
    assert_generic(exc)
    assert calls == 1


# -- 13. deflate bomb -----------------------------------------------------------------------


def _deflate_bomb(size: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    body = b"".join(squeeze.compress(chunk) for _ in range(size >> 20)) + squeeze.flush()
    return body


@pytest.fixture(scope="module")
def bomb() -> bytes:
    body = _deflate_bomb(40 << 20)  # 40 MiB of zeros, about 40 KB deflated
    assert len(body) < 48 * 1024
    assert len(zlib.decompress(body, -15)) == 40 << 20
    return body


def test_deflate_bomb_is_refused_without_inflating(
    layer: KeyLayer, enc_jwk: dict[str, Any], bomb: bytes
) -> None:
    token = build(enc_jwk, bomb, header=header(enc_jwk, zip="DEF")).compact()
    assert len(token) < 64 * 1024  # the size limit is not what refuses it
    before = layer.token.calls
    tracemalloc.start()
    try:
        started = time.perf_counter()
        with pytest.raises(EnvelopeRejected) as info:
            open_envelope(token, layer)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_generic(info.value)
    assert layer.token.calls == before
    assert elapsed < 1.0
    assert peak < 4 << 20, f"{peak} bytes allocated: was the bomb inflated?"


def test_same_bomb_without_zip_is_opened_as_opaque_bytes(
    layer: KeyLayer, enc_jwk: dict[str, Any], bomb: bytes
) -> None:
    """Control: without the `zip` member the same envelope opens, and its content is the
    compressed bytes, never inflated."""
    with open_envelope(build(enc_jwk, bomb).compact(), layer) as opened:
        assert bytes(opened.view()) == bomb


# -- 14. no outbound fetch ------------------------------------------------------------------


class Listener:
    """A loopback TCP listener that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def test_key_urls_in_the_header_are_never_fetched(
    layer: KeyLayer, enc_jwk: dict[str, Any], listener: Listener
) -> None:
    url = f"http://127.0.0.1:{listener.port}/keys"
    attacker_jwk = {"kty": "RSA", "n": enc_jwk["n"], "e": enc_jwk["e"], "kid": "attacker"}
    variants: list[dict[str, Any]] = [
        {"jku": url},
        {"jku": url, "kid": "attacker"},
        {"x5u": url},
        {"x5u": url, "kid": "attacker"},
        {"jwk": attacker_jwk, "kid": "attacker"},
        {"jwk": attacker_jwk},
    ]
    before = layer.token.calls
    for members in variants:
        token = build(enc_jwk, PLAINTEXT, header=header(enc_jwk, **members)).compact()
        assert_generic(reject(token, layer)[0])
    assert layer.token.calls == before
    time.sleep(0.3)
    assert listener.connections == 0
    # Control: the listener does count a connection when one is made.
    socket.create_connection(("127.0.0.1", listener.port), timeout=2).close()
    deadline = time.monotonic() + 2
    while listener.connections == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert listener.connections == 1


def test_unknown_kid_costs_no_hsm_call(layer: KeyLayer, enc_jwk: dict[str, Any]) -> None:
    for kid in ("no-such-key", enc_jwk["kid"][:-1], enc_jwk["kid"] + "A", enc_jwk["kid"].lower()):
        exc, calls = reject(
            build(enc_jwk, PLAINTEXT, header=header(enc_jwk, kid=kid)).compact(), layer
        )
        assert_generic(exc)
        assert calls == 0


# -- 15. size limits, at the boundary -------------------------------------------------------


def _token_of_length(jwk: dict[str, Any], length: int) -> str:
    """A valid envelope exactly `length` characters long (sizing the content and `typ`)."""
    for typ in ("x", "xx", "xxx", "xxxx"):
        base = len(build(jwk, b"", header=header(jwk, typ=typ)).compact())
        estimate = (length - base) * 3 // 4
        for size in range(max(0, estimate - 4), estimate + 4):
            token = build(jwk, b"x" * size, header=header(jwk, typ=typ)).compact()
            if len(token) == length:
                return token
    raise AssertionError(f"no envelope of {length} characters")


@pytest.mark.parametrize("limit", [4096, 64 * 1024])
def test_input_size_limit_is_exact(layer: KeyLayer, enc_jwk: dict[str, Any], limit: int) -> None:
    kwargs = {} if limit == 64 * 1024 else {"max_bytes": limit}
    at_limit = _token_of_length(enc_jwk, limit)
    with open_envelope(at_limit, layer, **kwargs) as opened:
        assert not opened.wiped
    exc, calls = reject(_token_of_length(enc_jwk, limit + 1), layer, **kwargs)
    assert_generic(exc)
    assert calls == 0
    exc, calls = reject(at_limit.encode() + b" ", layer, **kwargs)
    assert calls == 0


def _header_of(jwk: dict[str, Any], size: int) -> bytes:
    empty = json.dumps(header(jwk, typ="")).encode()
    raw = json.dumps(header(jwk, typ="x" * (size - len(empty)))).encode()
    assert len(raw) == size
    return raw


def test_protected_header_limit_is_1_kib(layer: KeyLayer, enc_jwk: dict[str, Any]) -> None:
    at_limit = build(enc_jwk, PLAINTEXT, raw_header=_header_of(enc_jwk, 1024)).compact()
    assert opens(at_limit, layer) == MESSAGE
    over = build(enc_jwk, PLAINTEXT, raw_header=_header_of(enc_jwk, 1025)).compact()
    exc, calls = reject(over, layer)
    assert_generic(exc)
    assert calls == 0


# -- 16. the clear content ------------------------------------------------------------------

BAD_CONTENT = {
    "not UTF-8": b'{"login":"alice","password":"\xff\xfe"}',
    "lone surrogate": b'{"login":"alice","password":"\\ud800"}',
    "not JSON": b"login=alice&password=secret",
    "JSON array": b'["alice","secret"]',
    "JSON string": b'"alice:secret"',
    "missing member": b'{"login":"alice"}',
    "extra member": b'{"login":"alice","password":"secret","otp":"123456"}',
    "duplicate member": b'{"login":"alice","password":"secret","password":"other"}',
    "number instead of string": b'{"login":"alice","password":12345}',
    "null member": b'{"login":"alice","password":null}',
    "empty string": b'{"login":"alice","password":""}',
    "oversize member": json.dumps({"login": "alice", "password": "x" * 129}).encode(),
    "empty content": b"",
    "NaN": b'{"login":"alice","password":NaN}',
    "nested too deep": b"[" * 5000,
}


@pytest.mark.parametrize("name", list(BAD_CONTENT))
def test_bad_clear_content_is_refused_and_wiped(
    layer: KeyLayer, enc_jwk: dict[str, Any], name: str
) -> None:
    with open_envelope(build(enc_jwk, BAD_CONTENT[name]).compact(), layer) as opened:
        view = opened.view()
        assert bytes(view) == BAD_CONTENT[name]  # it did open: the refusal is the schema's
        with pytest.raises(EnvelopeRejected) as info:
            opened.json_object(CREDENTIALS)
        assert_generic(info.value)
    assert opened.wiped
    assert bytes(view) == bytes(len(BAD_CONTENT[name]))


def test_content_at_the_member_limit_is_accepted(layer: KeyLayer, enc_jwk: dict[str, Any]) -> None:
    message = {"login": "a" * 128, "password": "é" * 128}
    assert opens(build(enc_jwk, json.dumps(message).encode()).compact(), layer) == message


# -- OpenedSecret ---------------------------------------------------------------------------


def test_opened_secret_never_shows_its_content_and_is_wiped_after_with(
    layer: KeyLayer, enc_jwk: dict[str, Any]
) -> None:
    opened = open_envelope(build(enc_jwk, PLAINTEXT).compact(), layer)
    view = opened.view()
    with opened:
        for text in (repr(opened), str(opened), f"{opened}", f"{opened!r}"):
            assert "alice" not in text and "horse" not in text
            assert text == "OpenedSecret(<redacted>)"
        assert not opened.wiped
        assert bytes(view) == PLAINTEXT
        with pytest.raises(TypeError):
            view[0] = 0  # the view is read-only
    assert opened.wiped
    assert bytes(view) == bytes(len(PLAINTEXT))
    assert len(opened.view()) == 0
    with pytest.raises(EnvelopeRejected):
        opened.json_object(CREDENTIALS)


def test_opened_secret_is_wiped_when_the_block_raises(
    layer: KeyLayer, enc_jwk: dict[str, Any]
) -> None:
    with (
        pytest.raises(RuntimeError),
        open_envelope(build(enc_jwk, PLAINTEXT).compact(), layer) as opened,
    ):
        view = opened.view()
        raise RuntimeError("connector failed")
    assert opened.wiped
    assert bytes(view) == bytes(len(PLAINTEXT))


def test_opened_secret_wipe_is_idempotent() -> None:
    secret = OpenedSecret(bytearray(b"s3cret"))
    view = secret.view()
    secret.wipe()
    secret.wipe()
    assert secret.wiped
    assert bytes(view) == b"\0" * 6
