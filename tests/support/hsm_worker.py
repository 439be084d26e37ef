"""Key-layer jobs run in a child process by the integration tests.

SoftHSM reads its configuration once per process (at `C_Initialize`), and a crash inside the
PKCS#11 module (segfault, double free) kills the whole process: so anything that needs its own
token directory, or might crash, runs here, and the test only looks at the exit code and at the
one JSON document printed on stdout.

Settings come from the `SHARELOCK_*` environment, exactly as for the `sharelock` command.

    python -m tests.support.hsm_worker stress THREADS OPS
    python -m tests.support.hsm_worker fork
    python -m tests.support.hsm_worker jwks
    python -m tests.support.hsm_worker open          (JSON list of compact JWEs on stdin)
    python -m tests.support.hsm_worker check
    python -m tests.support.hsm_worker duplicate-enc-label
    python -m tests.support.hsm_worker remove-token-dir
    python -m tests.support.hsm_worker two-layers
    python -m tests.support.hsm_worker live-rotation
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sharelock.config import load_settings
from sharelock.envelope import EnvelopeRejected, open_envelope
from sharelock.keys import HsmUnavailable, KeyLayer
from tests.support.jwe import build

CREDENTIALS = {"login": 128, "password": 128}


def _layer() -> KeyLayer:
    return KeyLayer(load_settings())


def _emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def _message(thread: int, op: int) -> dict[str, str]:
    return {"login": f"user-{thread}-{op}", "password": f"pw-{thread}-{op}-{os.urandom(6).hex()}"}


def _open_one(layer: KeyLayer, jwk: dict[str, Any], message: dict[str, str]) -> bool:
    token = build(jwk, json.dumps(message).encode()).compact()
    with open_envelope(token, layer) as opened:
        return opened.json_object(CREDENTIALS) == message


def stress(threads: int, ops: int) -> int:
    """`threads` threads share one KeyLayer; each opens `ops` distinct envelopes."""
    layer = _layer()
    jwk = layer.jwks()["keys"][0]
    start = threading.Barrier(threads)

    def work(thread: int) -> tuple[int, int, Counter[str]]:
        ok = wrong = 0
        errors: Counter[str] = Counter()
        start.wait()
        for op in range(ops):
            try:
                if _open_one(layer, jwk, _message(thread, op)):
                    ok += 1
                else:
                    wrong += 1
            except Exception as exc:
                errors[type(exc).__name__] += 1
        return ok, wrong, errors

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(work, range(threads)))
    errors: Counter[str] = Counter()
    for _, _, counted in results:
        errors.update(counted)
    _emit(
        {
            "threads": threads,
            "ops_per_thread": ops,
            "ok": sum(r[0] for r in results),
            "wrong": sum(r[1] for r in results),
            "errors": dict(errors),
            "seconds": round(time.monotonic() - began, 2),
        }
    )
    layer.close()
    return 0


def fork() -> int:
    """Use the layer, fork while another thread is busy in the HSM, and use the *same* KeyLayer
    object in the child (which must re-initialise PKCS#11) and in the parent."""
    layer = _layer()
    jwk = layer.jwks()["keys"][0]
    before = _open_one(layer, jwk, _message(0, 0))
    stop = threading.Event()
    busy_ops = Counter[str]()

    def busy() -> None:  # keeps the process-wide HSM lock taken and released around the fork
        n = 0
        while not stop.is_set():
            n += 1
            busy_ops["ok" if _open_one(layer, jwk, _message(1, n)) else "wrong"] += 1

    hammer = threading.Thread(target=busy)
    hammer.start()
    time.sleep(0.05)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: a deadlock or a crash must show as a bad exit code, not a hang
        os.close(read_end)
        signal.alarm(20)
        report: dict[str, Any] = {"pid": os.getpid()}
        try:
            report["sync"] = all(_open_one(layer, jwk, _message(2, n)) for n in range(20))

            async def opened_async() -> list[bool]:
                return list(
                    await asyncio.gather(
                        *(layer.run_async(_open_one, layer, jwk, _message(3, n)) for n in range(4))
                    )
                )

            report["async"] = all(asyncio.run(opened_async()))
            report["calls"] = layer.token.calls
        except BaseException as exc:
            report["error"] = f"{type(exc).__name__}: {traceback.format_exc()}"
        os.write(write_end, json.dumps(report).encode())
        os.close(write_end)
        os._exit(0 if report.get("sync") and report.get("async") else 1)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_report = json.loads(pipe.read() or b"{}")
    _, status = os.waitpid(pid, 0)
    stop.set()
    hammer.join()
    after = all(_open_one(layer, jwk, _message(4, n)) for n in range(20))
    _emit(
        {
            "parent_before_fork": before,
            "parent_after_fork": after,
            "parent_busy_thread": dict(busy_ops),
            "child": child_report,
            "child_exit": os.waitstatus_to_exitcode(status),
        }
    )
    layer.close()
    return 0 if before and after and os.waitstatus_to_exitcode(status) == 0 else 1


def jwks() -> int:
    layer = _layer()
    _emit(layer.jwks())
    layer.close()
    return 0


def signing() -> int:
    """Sign the text on stdin (ES256, the active key, as checkpoints and receipts are signed);
    report the JWS, the published signing keys and the whole keyring."""
    from sharelock.audit import sign_compact

    layer = _layer()
    jws = sign_compact(layer, {"text": sys.stdin.read()}, "sharelock-test")
    published = [k for k in layer.published_jwks()["keys"] if k["use"] == "sig"]
    _emit({"jws": jws, "published": published, "keyring": layer.signature_keyring()})
    layer.close()
    return 0


def verifying() -> int:
    """Check each JWS of the JSON list on stdin against the token's signing keyring."""
    from sharelock.audit import BadSignature, verify_compact

    tokens: list[str] = json.load(sys.stdin)
    layer = _layer()
    keyring = layer.signature_keyring()
    results: list[dict[str, Any]] = []
    for token in tokens:
        try:
            results.append({"payload": verify_compact(token, keyring, "sharelock-test")})
        except BadSignature as exc:
            results.append({"rejected": str(exc)})
    _emit({"results": results})
    layer.close()
    return 0


def legacy_signing_key() -> int:
    """Give the token the one signing key of earlier releases (`sharelock-audit-sign`), as a
    token made before signing keys rotated has."""
    layer = _layer()
    layer.token.generate_p256_keypair("sharelock-audit-sign")
    layer.close()
    return 0


def open_tokens() -> int:
    """Open each JWE of the JSON list on stdin; report the SHA-256 of each clear content, or why
    it was refused."""
    tokens: list[str] = json.load(sys.stdin)
    layer = _layer()
    results = []
    for token in tokens:
        try:
            with open_envelope(token, layer) as opened:
                results.append({"sha256": hashlib.sha256(opened.view()).hexdigest()})
        except EnvelopeRejected as exc:
            results.append({"rejected": str(exc)})
        except HsmUnavailable as exc:
            results.append({"unavailable": str(exc)})
    _emit({"results": results})
    layer.close()
    return 0


def check() -> int:
    """Build the layer from the environment and probe it; report the error's type and text."""
    try:
        layer = _layer()
        layer.check()
    except Exception as exc:
        kinds = ("HsmUnavailable", "ConfigError")
        _emit(
            {
                "error": next((k for k in kinds if _is(exc, k)), type(exc).__name__),
                "type": type(exc).__name__,
                "message": str(exc),
                "traceback": "".join(traceback.format_exception(exc)),
            }
        )
        return 0
    _emit({"error": None})
    layer.close()
    return 0


def _is(exc: BaseException, name: str) -> bool:
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def two_layers() -> int:
    """Two key layers in one process (the CLI's start-up check and the app's layer under
    `sharelock serve`, or test fixtures): a second layer that cannot find its token must not
    break the first one's session."""
    settings = load_settings()
    first = KeyLayer(settings)
    jwk = first.jwks()["keys"][0]
    assert _open_one(first, jwk, _message(7, 0))
    second = KeyLayer(settings.model_copy(update={"hsm_token_label": "no-such-token"}))
    second_errors: list[str | None] = []
    for _ in range(2):  # a readiness probe asks again
        try:
            second.check()
            second_errors.append(None)
        except HsmUnavailable as exc:
            second_errors.append(type(exc).__name__)
    outcomes = []
    for n in range(3):
        try:
            outcomes.append("ok" if _open_one(first, jwk, _message(7, n + 1)) else "wrong")
        except (HsmUnavailable, EnvelopeRejected) as exc:
            outcomes.append(type(exc).__name__)
    _emit({"second_errors": second_errors, "first_after": outcomes})
    first.close()
    return 0


def duplicate_enc_label() -> int:
    """Create two RSA pairs carrying the same encryption-key label (a token someone edited by
    hand), through the token API."""
    layer = _layer()
    label = "sharelock-enc-20200101T000000000000Z"
    for _ in range(2):
        layer.token.generate_rsa_keypair(label, b"20200101", bits=2048)
    _emit({"label": label, "objects": len(layer.token.list_objects(label))})
    layer.close()
    return 0


def remove_token_dir() -> int:
    """Checklist 44: the token directory disappears while the broker runs. Every attempt must
    end in `HsmUnavailable` or `EnvelopeRejected`; none may return clear content. Then the
    directory comes back and the same layer must work again."""
    settings = load_settings()
    layer = KeyLayer(settings)
    jwk = layer.jwks()["keys"][0]
    assert _open_one(layer, jwk, _message(0, 0))
    token_dir = settings.hsm_dir / "tokens"
    saved = settings.state_path / "tokens-saved"
    shutil.copytree(token_dir, saved)
    shutil.rmtree(token_dir)
    outcomes: Counter[str] = Counter()
    for n in range(6):
        message = _message(5, n)
        try:
            if n % 3 == 2:
                layer.check()
                outcomes["check passed"] += 1
                continue
            token = build(jwk, json.dumps(message).encode()).compact()
            with open_envelope(token, layer) as opened:
                clear = bytes(opened.view())
            outcomes["opened"] += 1
            outcomes["leaked"] += int(message["password"].encode() in clear)
        except (HsmUnavailable, EnvelopeRejected) as exc:
            outcomes[type(exc).__name__] += 1
        except Exception as exc:
            outcomes["other:" + type(exc).__name__] += 1
    shutil.copytree(saved, token_dir)
    shutil.rmtree(saved)
    recovered: list[bool | str] = []
    for n in range(3):
        try:
            recovered.append(_open_one(layer, jwk, _message(6, n)))
        except (HsmUnavailable, EnvelopeRejected) as exc:
            recovered.append(type(exc).__name__)
    _emit({"outcomes": dict(outcomes), "recovered": recovered})
    layer.close()
    return 0


def _opens(layer: KeyLayer, jwk: dict[str, Any], message: dict[str, str]) -> bool:
    try:
        return _open_one(layer, jwk, message)
    except EnvelopeRejected:
        return False


def live_rotation() -> int:
    """A running layer sees a rotation made by another process once it refreshes (as `serve`
    does on a timer), and stops opening the old key when its grace period ends, without any
    further refresh."""
    layer = _layer()
    layer.ensure_keys()
    old = layer.jwks()["keys"][0]
    report: dict[str, Any] = {"old_opens_before": _opens(layer, old, _message(0, 0))}
    rotated = subprocess.run(
        [str(Path(sys.executable).parent / "sharelock"), "keys", "rotate"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    report["rotate_exit"] = rotated.returncode
    report["active_before_refresh"] = layer.jwks()["keys"][0]["kid"]
    layer.refresh()
    new = layer.jwks()["keys"][0]
    report["active_after_refresh"] = new["kid"]
    report["old_kid"] = old["kid"]
    report["published_after_refresh"] = [k["kid"] for k in layer.jwks()["keys"]]
    report["old_opens_in_grace"] = _opens(layer, old, _message(0, 1))
    report["new_opens"] = _opens(layer, new, _message(0, 2))
    retiring = next(k for k in layer.encryption_keys() if k.kid == old["kid"])
    assert retiring.destroy_after is not None
    time.sleep(max(0.0, (retiring.destroy_after - datetime.now(UTC)).total_seconds()) + 0.5)
    report["old_opens_after_grace"] = _opens(layer, old, _message(0, 3))
    report["published_after_grace"] = [k["kid"] for k in layer.jwks()["keys"]]
    _emit(report)
    return 0


def main(argv: list[str]) -> int:
    command, *args = argv
    if command == "stress":
        return stress(int(args[0]), int(args[1]))
    jobs = {
        "fork": fork,
        "jwks": jwks,
        "open": open_tokens,
        "check": check,
        "duplicate-enc-label": duplicate_enc_label,
        "remove-token-dir": remove_token_dir,
        "two-layers": two_layers,
        "live-rotation": live_rotation,
        "sign": signing,
        "verify": verifying,
        "legacy-signing-key": legacy_signing_key,
    }
    return jobs[command]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
