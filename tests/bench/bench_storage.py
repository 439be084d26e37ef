"""Two ways to encrypt the personal values the broker keeps in Redis, measured.

    .venv/bin/python tests/bench/bench_storage.py [--seconds 3]

A. In the token, per value: `KeyLayer.seal_in_token` / `open_in_token` (AES-256-GCM under the
   token's storage key; one PKCS#11 call per value).
B. A data key wrapped by the token: `new_data_key` / `unwrap_data_key` (one PKCS#11 call per
   data key), then pyca/cryptography's AESGCM per value, in the process.

Values are 1 KiB; a storage cycle is one seal and one open of a value. Then the effect of
each on envelope openings running at the same time in the same process, with the storage
thread flat out and paced at a plausible rate: every PKCS#11 call holds the process's one HSM
lock, so option A's calls queue with the RSA decryptions; option B's per-value work only
competes for the GIL and the CPU.
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from collections.abc import Callable

from benchlib import Rate, bench_settings, machine, make_envelopes, run_for, table
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sharelock.envelope import open_envelope, wipe
from sharelock.keys import KeyLayer

VALUE = secrets.token_bytes(1024)
# A plausible storage load beside a saturated HSM: ~10 seals and ~10 opens per share flow at
# ~250 envelope openings per second.
PACED_CYCLES_PER_SECOND = 2500.0
PACING_TICK_S = 0.01
AAD = b"sharelock-bench:flow:field"


def in_token_cycle(keys: KeyLayer) -> Callable[[int], object]:
    """Option A: seal then open one value, both inside the token."""

    def cycle(_: int) -> None:
        assert keys.open_in_token(keys.seal_in_token(VALUE, AAD), AAD) == VALUE

    return cycle


def data_key_cycle(keys: KeyLayer) -> Callable[[int], object]:
    """Option B: one data key (already unwrapped), then seal and open one value in process."""
    data_key, wrapped = keys.new_data_key()
    wipe(data_key)
    clear_key = keys.unwrap_data_key(wrapped)
    aead = AESGCM(bytes(clear_key))
    wipe(clear_key)

    def cycle(_: int) -> None:
        nonce = secrets.token_bytes(12)
        assert aead.decrypt(nonce, aead.encrypt(nonce, VALUE, AAD), AAD) == VALUE

    return cycle


def single_operations(keys: KeyLayer, seconds: float) -> list[tuple[object, ...]]:
    sealed_in_token = keys.seal_in_token(VALUE, AAD)
    data_key, wrapped = keys.new_data_key()
    aead = AESGCM(bytes(data_key))
    wipe(data_key)
    nonce = secrets.token_bytes(12)
    sealed_locally = nonce + aead.encrypt(nonce, VALUE, AAD)

    def local_seal(_: int) -> None:
        n = secrets.token_bytes(12)
        aead.encrypt(n, VALUE, AAD)

    def local_open(_: int) -> None:
        aead.decrypt(sealed_locally[:12], sealed_locally[12:], AAD)

    def fresh_data_key(_: int) -> None:
        wipe(keys.new_data_key()[0])

    def unwrap(_: int) -> None:
        wipe(keys.unwrap_data_key(wrapped))

    measured = (
        ("A  seal 1 KiB in token", 1, lambda _: keys.seal_in_token(VALUE, AAD)),
        ("A  open 1 KiB in token", 1, lambda _: keys.open_in_token(sealed_in_token, AAD)),
        ("B  new_data_key", 1, fresh_data_key),
        ("B  unwrap_data_key", 1, unwrap),
        ("B  seal 1 KiB with AESGCM", 0, local_seal),
        ("B  open 1 KiB with AESGCM", 0, local_open),
    )
    rows: list[tuple[object, ...]] = []
    for label, hsm, operation in measured:
        rate = run_for(seconds, operation)
        rows.append((label, hsm, rate.per_second, rate.percentile_ms(50) * 1000))
    return rows


def envelope_latency_under_load(
    keys: KeyLayer,
    envelopes: list[str],
    seconds: float,
    background: Callable[[int], object] | None,
    per_second: float | None = None,
) -> tuple[Rate, Rate | None]:
    """Envelope openings for `seconds`, with `background` running in another thread meanwhile:
    flat out, or paced at `per_second` cycles (in bursts every 10 ms)."""
    stop = threading.Event()
    done: list[Rate] = []

    def load() -> None:
        assert background is not None
        count, start = 0, time.perf_counter()
        while not stop.is_set():
            background(count)
            count += 1
            if per_second is not None:
                ahead = count / per_second - (time.perf_counter() - start)
                if ahead > PACING_TICK_S:
                    time.sleep(ahead)
        done.append(Rate(count, time.perf_counter() - start, ()))

    def one(i: int) -> None:
        open_envelope(envelopes[i % len(envelopes)], keys).wipe()

    worker = threading.Thread(target=load) if background else None
    if worker:
        worker.start()
    rate = run_for(seconds, one)
    stop.set()
    if worker:
        worker.join()
    return rate, (done[0] if done else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each run")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    with bench_settings() as settings:
        keys = KeyLayer(settings)
        try:
            envelopes = make_envelopes(keys, 64)
            for envelope in envelopes[:3]:  # warm up: algorithm probe, handle cache
                open_envelope(envelope, keys).wipe()

            print("\nStorage encryption, one thread, 1 KiB values:\n")
            print(
                table(
                    ("operation", "HSM calls", "per second", "p50 µs"),
                    single_operations(keys, args.seconds),
                )
            )

            rows: list[tuple[object, ...]] = []
            paced = f"{PACED_CYCLES_PER_SECOND:,.0f}/s"
            for label, background, pace in (
                ("alone", None, None),
                ("A  in token, flat out", in_token_cycle(keys), None),
                ("B  data key, flat out", data_key_cycle(keys), None),
                (f"A  in token, {paced}", in_token_cycle(keys), PACED_CYCLES_PER_SECOND),
                (f"B  data key, {paced}", data_key_cycle(keys), PACED_CYCLES_PER_SECOND),
            ):
                rate, load = envelope_latency_under_load(
                    keys, envelopes, args.seconds, background, pace
                )
                rows.append(
                    (
                        label,
                        rate.per_second,
                        rate.percentile_ms(50),
                        rate.percentile_ms(99),
                        load.per_second if load else "-",
                    )
                )
            print(
                "\nEnvelope openings with a storage loop in another thread of the same process:\n"
            )
            print(
                table(
                    (
                        "concurrent storage work",
                        "envelopes/s",
                        "p50 ms",
                        "p99 ms",
                        "storage cycles/s",
                    ),
                    rows,
                )
            )
        finally:
            keys.close()


if __name__ == "__main__":
    main()
