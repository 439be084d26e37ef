"""Partner client authentication: CPU per `PartnerRegistry.authenticate` call, by outcome.

    .venv/bin/python tests/bench/bench_client_auth.py [--calls 2000] [--rounds 20]

On a migrated SQLite database in a temporary directory, one partner is registered; then the
process CPU time (`time.process_time()`: every thread of the process, so Argon2's lanes count
too) is measured over `--calls` calls each with (a) the right secret, (b) a wrong secret and
(c) an unknown client id, in alternating batches. Each call includes the row lookup in SQLite,
as in the broker. For comparison, the partner's row is then rewritten with an Argon2id hash
(argon2-cffi's defaults, as earlier versions stored secrets) and the CPU of a legacy
verification measured: `--legacy-calls` wrong secrets (which leave the row as it is), then one
right secret (verify and upgrade). Not part of `make test`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher
from benchlib import machine, table
from sqlalchemy import Engine, text

from sharelock.db import create_engine_for, migrate
from sharelock.registry import PartnerRegistry


def cpu_ms_per_call(calls: int, operation: Callable[[], object]) -> float:
    started = time.process_time()
    for _ in range(calls):
        operation()
    return (time.process_time() - started) * 1000 / calls


def interleaved(
    calls: int, rounds: int, operations: dict[str, Callable[[], object]]
) -> dict[str, float]:
    """ms CPU per call of each operation, measured in `rounds` alternating batches, so that a
    change in the machine's load during the run affects every operation alike."""
    total = dict.fromkeys(operations, 0.0)
    batch = max(1, calls // rounds)
    for _ in range(rounds):
        for name, operation in operations.items():
            total[name] += cpu_ms_per_call(batch, operation) * batch
    return {name: spent / (batch * rounds) for name, spent in total.items()}


def stored(engine: Engine, client_id: str) -> str:
    with engine.connect() as connection:
        value = connection.scalar(
            text("SELECT client_secret_hash FROM partners WHERE client_id = :id"), {"id": client_id}
        )
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--legacy-calls", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sharelock-client-auth-") as tmp:
        engine = create_engine_for(f"sqlite:///{Path(tmp) / 'sharelock.db'}")
        migrate(engine)
        registry = PartnerRegistry(engine)
        partner, secret = registry.add("Bench Shop", ["https://shop.example/cb"], ["identity"])
        client_id = partner.client_id
        wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        unknown = "sl_" + "x" * 22

        def right_call() -> None:
            assert registry.authenticate(client_id, secret) is not None

        def wrong_call() -> None:
            assert registry.authenticate(client_id, wrong) is None

        def unknown_call() -> None:
            assert registry.authenticate(unknown, secret) is None

        digest = stored(engine, client_id).encode()

        def digest_only() -> None:
            candidate = "sha256:" + hashlib.sha256(wrong.encode()).hexdigest()
            hmac.compare_digest(candidate.encode(), digest)

        for call in (right_call, wrong_call, unknown_call):  # warm the pool and caches
            cpu_ms_per_call(50, call)
        measured = interleaved(
            args.calls,
            args.rounds,
            {"right": right_call, "wrong": wrong_call, "unknown": unknown_call},
        )
        right, wrong_ms, unknown_ms = measured["right"], measured["wrong"], measured["unknown"]
        hashing = cpu_ms_per_call(args.calls * 10, digest_only)

        legacy_secret = "legacy-" + "s" * 36
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE partners SET client_secret_hash = :hash WHERE client_id = :id"),
                {"hash": PasswordHasher().hash(legacy_secret), "id": client_id},
            )
        legacy_wrong = cpu_ms_per_call(
            args.legacy_calls, lambda: registry.authenticate(client_id, legacy_secret + "x")
        )
        assert stored(engine, client_id).startswith("$argon2id$")
        legacy_right = cpu_ms_per_call(1, lambda: registry.authenticate(client_id, legacy_secret))
        assert stored(engine, client_id).startswith("sha256:")
        after_upgrade = cpu_ms_per_call(args.calls, lambda: registry.authenticate(client_id, "x"))
        engine.dispose()

    rows: list[tuple[str, int, str]] = [
        ("(a) right secret", args.calls, f"{right:.3f}"),
        ("(b) wrong secret", args.calls, f"{wrong_ms:.3f}"),
        ("(c) unknown client id", args.calls, f"{unknown_ms:.3f}"),
        ("    SHA-256 + compare_digest alone", args.calls * 10, f"{hashing:.4f}"),
        ("legacy Argon2id row, wrong secret", args.legacy_calls, f"{legacy_wrong:.1f}"),
        ("legacy Argon2id row, right secret (+ upgrade)", 1, f"{legacy_right:.1f}"),
        ("same row after the upgrade, wrong secret", args.calls, f"{after_upgrade:.3f}"),
    ]
    print(machine())
    print("SQLite (temporary file); CPU = time.process_time(), all threads of the process\n")
    print(table(["authenticate(...)", "calls", "ms CPU per call"], rows))
    print(f"\nwrong / right: {wrong_ms / right:.2f}   unknown / right: {unknown_ms / right:.2f}")
    print(f"legacy Argon2 verification / current wrong secret: {legacy_wrong / wrong_ms:,.0f}x")


if __name__ == "__main__":
    main()
