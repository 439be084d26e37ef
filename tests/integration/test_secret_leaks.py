"""No credential, clear content or PIN in any log record, exception or repr (SPEC, "What done
means"; SECURITY-CHECKLIST section A invariants).

Planted values are unique strings; each test collects every text the code under test produced
(log records of every logger at DEBUG, captured stdout/stderr, the error's str, repr, formatted
traceback and its whole chain of causes and contexts with their attributes) and looks for the
planted values and their encodings.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from sharelock.config import Settings
from sharelock.envelope import EnvelopeRejected, open_envelope
from sharelock.errors import ConfigError
from sharelock.keys import HsmUnavailable, KeyLayer
from tests.support.envelope_cases import CASES
from tests.support.jwe import build

LOGIN = "plant-login-5be1@example.test"
PASSWORD = "Plant-3f9c-P4ssw0rd!"
PIN = "Plant-PIN-9a7e-0042"
CREDENTIALS = {"login": 128, "password": 128}
PLAINTEXT = json.dumps({"login": LOGIN, "password": PASSWORD}).encode()
ROOT = Path(__file__).resolve().parents[2]


def encodings(value: str | bytes) -> set[str]:
    """The value and the spellings it could take in a log: hex, and standard and URL-safe
    base64 at each of the three byte alignments (the stable middle of each encoding)."""
    raw = value.encode() if isinstance(value, str) else value
    found = {raw.decode("latin-1"), raw.hex()}
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * shift + raw).decode().rstrip("=")
            found.add(text[4 if shift else 0 : -4])
    return {needle for needle in found if len(needle) >= 8}


SECRETS = encodings(LOGIN) | encodings(PASSWORD) | encodings(PLAINTEXT)
PIN_NEEDLES = encodings(PIN)


def exception_texts(exc: BaseException) -> list[str]:
    """Everything an error reporter could print of `exc`: the formatted traceback, and for each
    exception of the chain (causes and contexts, suppressed or not) its text, repr, arguments
    and the attributes that carry input (`object` of a UnicodeError, `doc` of a
    JSONDecodeError)."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        texts += [
            repr(getattr(current, name)) for name in ("object", "doc") if hasattr(current, name)
        ]
        pending += [current.__cause__, current.__context__]
    return texts


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    texts = [caplog.text]
    for record in caplog.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
    return texts


def assert_absent(needles: Iterable[str], texts: Iterable[str]) -> None:
    haystack = "\n".join(texts)
    for needle in needles:
        assert needle not in haystack, f"{needle!r} leaked"


@pytest.fixture(scope="module")
def layer(key_layer: KeyLayer) -> KeyLayer:
    key_layer.algorithms()
    return key_layer


def test_needles_are_found_when_present() -> None:
    """Control for the checks below: each spelling of a planted value is caught."""
    for spelled in (
        PASSWORD,
        PASSWORD.encode().hex(),
        base64.b64encode(b"x" + PASSWORD.encode()).decode(),
        base64.urlsafe_b64encode(b"xy" + PLAINTEXT).decode(),
    ):
        with pytest.raises(AssertionError):
            assert_absent(SECRETS, [f"log line: {spelled}"])


def test_success_path_leaks_nothing(
    layer: KeyLayer,
    enc_jwk: dict[str, Any],
    all_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with open_envelope(build(enc_jwk, PLAINTEXT).compact(), layer) as opened:
        assert opened.json_object(CREDENTIALS)["password"] == PASSWORD
        texts = [repr(opened), str(opened), repr(layer), repr(layer.token)]
    captured = capsys.readouterr()
    assert_absent(SECRETS, [*texts, *log_texts(all_logs), captured.out, captured.err])


@pytest.mark.parametrize("name", list(CASES))
def test_refused_envelope_leaks_nothing(
    layer: KeyLayer,
    enc_jwk: dict[str, Any],
    all_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    with (
        pytest.raises(EnvelopeRejected) as info,
        open_envelope(CASES[name].make(enc_jwk, PLAINTEXT), layer),
    ):
        pass
    captured = capsys.readouterr()
    texts = [*exception_texts(info.value), *log_texts(all_logs), captured.out, captured.err]
    assert_absent(SECRETS, texts)


def test_rsa_oaep_256_path_leaks_nothing(
    layer: KeyLayer,
    enc_jwk: dict[str, Any],
    all_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = build(enc_jwk, PLAINTEXT, alg="RSA-OAEP-256").compact()
    texts: list[str] = []
    try:
        with open_envelope(token, layer) as opened:
            texts.append(repr(opened))
    except EnvelopeRejected as exc:
        texts += exception_texts(exc)
    captured = capsys.readouterr()
    assert_absent(SECRETS, [*texts, *log_texts(all_logs), captured.out, captured.err])
    assert texts  # one of the two paths ran


BAD_CONTENT = {
    "not UTF-8": PLAINTEXT[:-2] + b'\xff"}',
    "not JSON": f"login={LOGIN}&password={PASSWORD}".encode(),
    "truncated JSON": PLAINTEXT[:-2],
    "JSON array": json.dumps([LOGIN, PASSWORD]).encode(),
    "extra member": json.dumps({"login": LOGIN, "password": PASSWORD, "otp": "1"}).encode(),
    "missing member": json.dumps({"password": PASSWORD}).encode(),
    "wrong type": json.dumps({"login": [LOGIN], "password": PASSWORD}).encode(),
    "oversize": json.dumps({"login": LOGIN, "password": PASSWORD * 10}).encode(),
    "duplicate member": PLAINTEXT[:-1] + f', "password": "{PASSWORD}"}}'.encode(),
    "lone surrogate": PLAINTEXT[:-2] + b'\\ud800"}',
}


@pytest.mark.parametrize("name", list(BAD_CONTENT))
def test_refused_clear_content_leaks_nothing(
    layer: KeyLayer,
    enc_jwk: dict[str, Any],
    all_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    content = BAD_CONTENT[name]
    assert PASSWORD.encode() in content
    with (
        open_envelope(build(enc_jwk, content).compact(), layer) as opened,
        pytest.raises(EnvelopeRejected) as info,
    ):
        opened.json_object(CREDENTIALS)
    assert opened.wiped
    captured = capsys.readouterr()
    texts = [*exception_texts(info.value), *log_texts(all_logs), captured.out, captured.err]
    assert_absent(SECRETS, texts)


# -- the PIN --------------------------------------------------------------------------------


def test_key_layer_reprs_hide_the_real_pin(key_layer: KeyLayer, settings: Settings) -> None:
    pin = settings.user_pin()
    assert len(pin) >= 16  # generated by `hsm init`: a real secret to look for
    texts = [repr(key_layer), str(key_layer), repr(key_layer.token), str(key_layer.token)]
    texts += [repr(settings), str(settings), settings.model_dump_json()]
    assert_absent(encodings(pin), texts)
    assert "sharelock-test" in repr(key_layer.token)  # the repr does say something useful


def test_planted_pin_stays_out_of_settings_output(settings: Settings) -> None:
    planted = settings.model_copy(update={"hsm_pin": SecretStr(PIN)})
    assert planted.user_pin() == PIN
    texts = [repr(planted), str(planted), planted.model_dump_json(), repr(planted.model_dump())]
    assert_absent(PIN_NEEDLES, texts)


def _planted(settings: Settings, **changes: Any) -> Settings:
    return Settings(
        state_dir=settings.state_dir,
        hsm_token_label=changes.pop("hsm_token_label", settings.hsm_token_label),
        hsm_pin=SecretStr(PIN),
        **changes,
    )


def test_bad_module_errors_hide_the_pin(
    settings: Settings, tmp_path: Path, all_logs: pytest.LogCaptureFixture
) -> None:
    fake = tmp_path / "libnot-a-pkcs11-module.so"
    fake.write_bytes(os.urandom(256))
    layer = KeyLayer(_planted(settings, pkcs11_module=fake))
    with pytest.raises(HsmUnavailable) as unavailable:
        layer.check()
    assert str(fake) in str(unavailable.value)
    with pytest.raises(ConfigError) as missing:
        KeyLayer(_planted(settings, pkcs11_module=tmp_path / "missing.so"))
    assert "SHARELOCK_PKCS11_MODULE" in str(missing.value)
    texts = [repr(layer), *exception_texts(unavailable.value), *exception_texts(missing.value)]
    assert_absent(PIN_NEEDLES, [*texts, *log_texts(all_logs)])


def _check_in_child(settings: Settings, **env_settings: str) -> subprocess.CompletedProcess[str]:
    """`KeyLayer.check()` in a child process: SoftHSM keeps one login per process (this one is
    logged in), and a failed connection re-initialises the module for the whole process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHARELOCK_", "SOFTHSM2"))}
    env |= {
        "SHARELOCK_STATE_DIR": str(settings.state_dir),
        "SHARELOCK_HSM_TOKEN_LABEL": settings.hsm_token_label,
        "SHARELOCK_HSM_PIN": PIN,
    }
    env |= {f"SHARELOCK_{name.upper()}": value for name, value in env_settings.items()}
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.hsm_worker", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_wrong_pin_error_hides_the_pin(key_layer: KeyLayer, settings: Settings) -> None:
    done = _check_in_child(settings)
    report = json.loads(done.stdout)
    assert report["error"] == "HsmUnavailable"
    assert "refused the PIN" in report["message"]
    assert "SHARELOCK_HSM_PIN" in report["message"]
    assert_absent(PIN_NEEDLES, [done.stdout, done.stderr])


def test_unknown_token_error_hides_the_pin(key_layer: KeyLayer, settings: Settings) -> None:
    done = _check_in_child(settings, hsm_token_label="no-such-token-7f2d")
    report = json.loads(done.stdout)
    assert report["error"] == "HsmUnavailable"
    assert "no-such-token-7f2d" in report["message"]
    assert "SHARELOCK_HSM_TOKEN_LABEL" in report["message"]
    assert_absent(PIN_NEEDLES, [done.stdout, done.stderr])


def test_unconnected_layer_repr_hides_the_planted_pin(settings: Settings) -> None:
    layer = KeyLayer(_planted(settings, hsm_token_label="never-connected"))
    assert layer.token._pin == PIN  # planted where the layer keeps it
    assert_absent(PIN_NEEDLES, [repr(layer), str(layer), repr(layer.token), str(layer.token)])
