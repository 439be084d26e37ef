"""Envelope openings per second through the key layer, beside OpenSSL's RSA-4096 private ops/s.

    .venv/bin/python tests/bench/bench_envelope.py [--seconds 5]

Each process opens its own `KeyLayer` on one fresh SoftHSM token (as each server worker does)
and opens distinct compact JWEs (RSA-OAEP-4096 in the token, then AES-256-GCM) for a fixed time.
The reference is `openssl speed -seconds 3 rsa4096` (`-multi N` for N processes): the RSA
private operation is almost all of an opening's cost, so the ratio shows the overhead of
PKCS#11, python-pkcs11 and the envelope checks. The last row runs two threads in one process:
every PKCS#11 call holds one process lock, so threads add no throughput.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import threading
from multiprocessing.synchronize import Barrier

from benchlib import (
    Rate,
    bench_settings,
    machine,
    make_envelopes,
    openssl_rsa4096_sign_per_second,
    run_for,
    table,
)

from sharelock.config import Settings
from sharelock.envelope import open_envelope
from sharelock.keys import KeyLayer

ENVELOPES = 64
WARM_UP = 3


def _open_for(keys: KeyLayer, envelopes: list[str], seconds: float, threads: int) -> Rate:
    def one(i: int) -> None:
        with open_envelope(envelopes[i % len(envelopes)], keys) as opened:
            assert bytes(opened.view()[:1]) == b"{"

    if threads == 1:
        return run_for(seconds, one)
    rates: list[Rate] = []
    workers = [
        threading.Thread(target=lambda: rates.append(run_for(seconds, one))) for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return Rate(
        sum(r.ops for r in rates),
        max(r.seconds for r in rates),
        [lat for r in rates for lat in r.latencies],
    )


def _process(
    settings: Settings,
    envelopes: list[str],
    seconds: float,
    threads: int,
    start: Barrier,
    results: mp.Queue,  # type: ignore[type-arg]
) -> None:
    keys = KeyLayer(settings)  # this process's own PKCS#11 session
    try:
        for envelope in envelopes[:WARM_UP]:  # algorithm probe, handle cache
            open_envelope(envelope, keys).wipe()
        start.wait()
        rate = _open_for(keys, envelopes, seconds, threads)
        results.put((rate.ops, rate.seconds, list(rate.latencies)))
    finally:
        keys.close()


def measure(
    settings: Settings, envelopes: list[str], seconds: float, processes: int, threads: int = 1
) -> Rate:
    ctx = mp.get_context("spawn")  # like uvicorn's workers: a fresh interpreter each
    start = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    children = [
        ctx.Process(target=_process, args=(settings, envelopes, seconds, threads, start, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    start.wait(timeout=120)
    collected = [results.get(timeout=seconds + 120) for _ in children]
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"a benchmark process failed (exit {child.exitcode})")
    # Every process ran for the same wall time in parallel: throughputs add up.
    return Rate(
        sum(ops for ops, _, _ in collected),
        max(secs for _, secs, _ in collected),
        [lat for _, _, lats in collected for lat in lats],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each run")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    with bench_settings() as settings:
        keys = KeyLayer(settings)
        try:
            envelopes = make_envelopes(keys, ENVELOPES)
            alg = keys.preferred_algorithm()
            bits = keys.active_key().modulus_bits
        finally:
            keys.close()
        print(f"token: SoftHSM at {settings.pkcs11_module}, key RSA-{bits}, alg {alg} + A256GCM")

        rows = []
        references: dict[int, float | None] = {}  # openssl figure per degree of parallelism
        for label, processes, threads in (
            ("1 process", 1, 1),
            ("2 processes", 2, 1),
            ("1 process, 2 threads", 1, 2),
        ):
            rate = measure(settings, envelopes, args.seconds, processes, threads)
            ways = processes * threads
            if ways not in references:
                references[ways] = openssl_rsa4096_sign_per_second(ways)
            reference = references[ways]
            rows.append(
                (
                    label,
                    rate.per_second,
                    rate.percentile_ms(50),
                    rate.percentile_ms(99),
                    reference if reference is not None else "n/a",
                    f"{rate.per_second / reference:.2f}" if reference else "n/a",
                )
            )
    print()
    print(
        table(
            (
                "configuration",
                "envelopes/s",
                "p50 ms",
                "p99 ms",
                "openssl rsa4096 sign/s",
                "ratio",
            ),
            rows,
        )
    )
    print(
        "\nopenssl: `openssl speed -seconds 3 rsa4096`, with `-multi N` for N-way rows "
        "(N = processes x threads)."
    )


if __name__ == "__main__":
    main()
