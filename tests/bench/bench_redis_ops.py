"""The broker's own Redis work, one operation at a time: CPU of this process per operation.

    .venv/bin/python tests/bench/bench_redis_ops.py [--ops 2000] [--repeats 5]

A private redis-server and a throw-away SoftHSM token; the rate limiter (`RateLimiter`) and a
flow's session (`Sessions`: start, load, transition, end) exactly as the broker calls them,
with the audit trail left out (a stub that records nothing). Each line is the least CPU time
(`time.process_time`, this process only) over `--repeats` rounds of `--ops` operations, so
that a busy machine disturbs it less than it does `bench_flow.py`; Redis's CPU (from /proc)
is its mean over the rounds.

To compare two versions of the code, run it twice with the other tree first on `PYTHONPATH`
(`git archive`, or a copy of `src/`): the operations' interface is the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchlib import bench_settings, machine, proc_cpu_seconds, table

from sharelock.clock import SystemClock
from sharelock.config import Limits, Settings
from sharelock.embedded import EmbeddedRedis
from sharelock.flow import Records
from sharelock.flow.session import Sessions
from sharelock.flow.state import Status
from sharelock.keys import KeyLayer
from sharelock.oauth.authorization import AuthorizationRequest
from sharelock.ratelimit import RateLimited, RateLimiter
from sharelock.store import SealedStore, Sealer, connect, redis_max_lifetime

REQUEST = AuthorizationRequest(
    client_id="sl_bench",
    redirect_uri="https://partner.example/cb",
    scopes=("identity",),
    state="s",
    code_challenge="c" * 43,
)
AWAITING = frozenset({Status.AWAITING_CREDENTIALS})
COLLECTING = frozenset({Status.COLLECTING})
# The bench_flow.py limits (one generator address: nothing refused) and the defaults.
WIDE = Limits(per_address="1000000/minute", failed_auth_per_address="1000000/minute")
DEFAULT = Limits()


class NoAudit:
    async def record(self, *args: Any, **kwargs: Any) -> None:
        return None


async def measure(
    label: str, op: Callable[[int], Awaitable[object]], ops: int, repeats: int, redis_pid: int
) -> tuple[str, float, float]:
    """The least CPU of this process per operation over the rounds, and Redis's CPU per
    operation over all of them."""
    for i in range(min(200, ops)):
        await op(-1 - i)
    best = float("inf")
    redis_before = proc_cpu_seconds(redis_pid)
    for round_ in range(repeats):
        started = time.process_time()
        for i in range(ops):
            await op(round_ * ops + i)
        best = min(best, time.process_time() - started)
    redis_cpu = proc_cpu_seconds(redis_pid) - redis_before
    return label, best / ops * 1e6, redis_cpu / (ops * repeats) * 1e6


async def run(
    settings: Settings, url: str, redis_pid: int, ops: int, repeats: int
) -> list[tuple[str, float, float]]:
    keys = KeyLayer(settings)
    client = connect(url)
    store = SealedStore(client, Sealer(keys), max_lifetime=redis_max_lifetime(settings.retention))
    records = Records(store, settings.retention, SystemClock())
    sessions = Sessions(settings, records, NoAudit(), SystemClock())  # type: ignore[arg-type]
    results: list[tuple[str, float, float]] = []
    try:
        for limits, name in ((WIDE, "bench limits"), (DEFAULT, "default limits")):
            limiter = RateLimiter(client, limits, b"k" * 32)

            async def hit(i: int, limiter: RateLimiter = limiter) -> None:
                with contextlib.suppress(RateLimited):
                    await limiter.hit("per_address", f"192.0.2.{i % 200}")

            async def check(i: int, limiter: RateLimiter = limiter) -> None:
                await limiter.check("failed_auth_per_address", "192.0.2.1")

            async def remaining(i: int, limiter: RateLimiter = limiter) -> None:
                await limiter.remaining("wrong_passwords_per_flow", f"flow-{i % 50}")

            results.append(
                await measure(f"limiter.hit per_address ({name})", hit, ops, repeats, redis_pid)
            )
            results.append(
                await measure(f"limiter.check failed_auth ({name})", check, ops, repeats, redis_pid)
            )
            results.append(
                await measure(f"limiter.remaining ({name})", remaining, ops, repeats, redis_pid)
            )

        async def start(i: int) -> None:
            await sessions.start(REQUEST, None)

        async def credentials_step(i: int) -> None:
            """What the credentials step asks of the session: load, then two transitions."""
            started = await sessions.start(REQUEST, None)
            flow = await sessions.load(started.flow_id, started.session_secret)
            flow = await sessions.transition(flow, AWAITING, status=Status.COLLECTING)
            await sessions.transition(flow, COLLECTING, status=Status.COLLECTED)

        async def start_and_end(i: int) -> None:
            started = await sessions.start(REQUEST, None)
            await sessions.end(await sessions.load(started.flow_id, started.session_secret))

        results.append(await measure("session start", start, ops, repeats, redis_pid))
        results.append(
            await measure(
                "start, load, 2 transitions", credentials_step, ops // 2, repeats, redis_pid
            )
        )
        results.append(
            await measure("start, load, end", start_and_end, ops // 2, repeats, redis_pid)
        )
    finally:
        await store.aclose()
        keys.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with bench_settings() as settings, EmbeddedRedis(Path(settings.state_dir) / "redis") as server:
        results = asyncio.run(run(settings, server.url, server.pid or 0, args.ops, args.repeats))
    rows = [(name, f"{mine:.0f}", f"{theirs:.0f}") for name, mine, theirs in results]
    print(table(["operation", "broker CPU µs (least of rounds)", "Redis CPU µs (mean)"], rows))


if __name__ == "__main__":
    main()
