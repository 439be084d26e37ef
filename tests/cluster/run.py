"""`make test-cluster`: several broker nodes on Redis Sentinel (or Redis Cluster) and
PostgreSQL, behind HAProxy, under load, with faults; every process real, each on its own port
of this machine.

    .venv/bin/python -m tests.cluster.run [--redis sentinel|cluster] [--seconds 66] [--keep]

1. Starts the cluster (`tests.cluster.topology`): a private CA, PostgreSQL with a password and
   TLS, a Redis primary, a replica and three Sentinels with ACL users and TLS (or, with
   `--redis cluster`, a Redis Cluster of three primaries and three replicas), the sandbox,
   two broker nodes (`sharelock serve --workers 2`, one shared SoftHSM token) and HAProxy with
   TLS in front, running the configurations `deploy/` ships.
2. Throughput through HAProxy with one node, then with two (closed loop, same people).
3. The fault run: people complete shares through HAProxy while, at set moments, the Redis
   primary is killed with SIGKILL (Sentinel promotes the replica; the old primary comes back as
   a replica; on a cluster, one of the three primaries, and the cluster promotes its
   replica), one broker node is killed with SIGKILL (and restarted), and PostgreSQL is paused
   with SIGSTOP for a few seconds.
4. Waits for every abandoned flow's expiry row, then asserts (`tests.cluster.checks`): no
   share hung; at most one `data_delivered` row per flow; one exactly for every share the
   partner received, and none for data it never received, except a delivery whose node was
   killed between its committed row and its answer (counted and printed: the known limit of
   docs/operations.md, "A node lost"); exactly one terminal row per flow; `sharelock audit
   verify` clean; no planted value in any Redis or log.

Prints the fault table and exits 1 if any assertion failed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sharelock.embedded import free_port
from tests.cluster import checks
from tests.cluster.load import Load, ShareResult
from tests.cluster.topology import Cluster, cluster
from tests.support.redis_cluster import RedisCluster

console = Console(width=None if sys.stdout.isatty() else 160, highlight=False)

SESSION_SECONDS = 45  # the flows' session cap in this run (abandoned flows expire after it)
PG_PAUSE_SECONDS = 4.0
NODE_DOWN_SECONDS = 8.0


@dataclass
class Fault:
    name: str
    at: float  # seconds since the fault run's start
    inject: Callable[[], Awaitable[None]]
    recovered_at: float | None = None  # when the component was back (restart done)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


async def measure(load: Load, people: int, seconds: float) -> tuple[float, int, int]:
    """Closed loop for `seconds`: shares/s delivered, delivered, others (the load's results
    keep accumulating)."""
    first = len(load.results)
    began = load.clock()
    await load.closed_loop(people, began + seconds)
    elapsed = load.clock() - began
    these = load.results[first:]
    delivered = sum(1 for r in these if r.outcome == "delivered")
    return delivered / elapsed, delivered, len(these) - delivered


async def in_thread(fn: Callable[[], object]) -> None:
    await asyncio.get_running_loop().run_in_executor(None, fn)


def faults(running: Cluster, clock: Callable[[], float], t0: float) -> list[Fault]:
    redis = running.redis
    node = running.nodes[0]
    pg = running.postgres
    made: list[Fault] = []

    async def kill_redis_primary() -> None:
        loop = asyncio.get_running_loop()
        if isinstance(redis, RedisCluster):
            # One primary of three: a third of the slots, hence of the flows.
            dead = redis.primaries()[0]
            redis.kill(dead)
            await loop.run_in_executor(None, redis.wait_for_promotion, dead)
            made[0].recovered_at = clock() - t0
            await in_thread(lambda: redis.restart(dead))
            return
        old = redis.kill_primary()
        new = await loop.run_in_executor(None, redis.wait_for_new_primary, old)
        made[0].recovered_at = clock() - t0
        await in_thread(lambda: redis.restart(old, as_replica_of=new))

    async def kill_node() -> None:
        node.child.kill()
        await asyncio.sleep(NODE_DOWN_SECONDS)
        await in_thread(lambda: running.restart_node(node))
        made[1].recovered_at = clock() - t0

    async def pause_postgres() -> None:
        pg.pause()
        try:
            await asyncio.sleep(PG_PAUSE_SECONDS)
        finally:
            pg.resume()
        made[2].recovered_at = clock() - t0

    promotion = "cluster failover" if isinstance(redis, RedisCluster) else "Sentinel failover"
    made += [
        Fault(f"Redis primary SIGKILL ({promotion})", 8.0, kill_redis_primary),
        Fault(f"broker node SIGKILL ({NODE_DOWN_SECONDS:.0f} s down)", 26.0, kill_node),
        Fault(f"PostgreSQL SIGSTOP ({PG_PAUSE_SECONDS:.0f} s)", 46.0, pause_postgres),
    ]
    return made


async def fault_run(running: Cluster, load: Load, people: int, seconds: float) -> list[Fault]:
    load.results.clear()
    t0 = load.clock()
    planned = faults(running, load.clock, t0)

    async def schedule(fault: Fault) -> None:
        await asyncio.sleep(max(0.0, t0 + fault.at - load.clock()))
        console.print(f"  t={load.clock() - t0:5.1f} s: {fault.name}")
        await fault.inject()

    await asyncio.gather(
        load.closed_loop(people, t0 + seconds), *(schedule(fault) for fault in planned)
    )
    for result in load.results:
        result.started -= t0
        result.ended -= t0
    return planned


def fault_table(
    planned: list[Fault], results: list[ShareResult], findings: checks.Findings
) -> Table:
    table = Table(title="Faults under load, through HAProxy (2 nodes × 2 workers)")
    for column in (
        "fault",
        "at s",
        "shares in flight",
        "delivered",
        "failed cleanly",
        "hung",
        "double deliveries",
        "releases without a row",
        "s to recover",
    ):
        table.add_column(column, justify="left" if column == "fault" else "right")
    for fault in planned:
        flight = [r for r in results if r.started <= fault.at < r.ended]
        after = [r for r in results if r.started >= fault.at and r.outcome == "delivered"]
        recover = min((r.ended for r in after), default=None)
        table.add_row(
            fault.name,
            f"{fault.at:.0f}",
            str(len(flight)),
            str(sum(1 for r in flight if r.outcome == "delivered")),
            str(sum(1 for r in flight if r.outcome == "failed")),
            str(sum(1 for r in flight if r.outcome == "hung")),
            str(findings.double_deliveries),
            str(findings.releases_without_row),
            "-" if recover is None else f"{recover - fault.at:.1f}",
        )
    return table


async def main_async(args: argparse.Namespace, state: Path) -> int:
    https_port = free_port()
    started = time.monotonic()
    with cluster(
        state, issuer_port=https_port, session_seconds=SESSION_SECONDS, redis_mode=args.redis
    ) as running:
        console.print(f"Redis: {args.redis}")
        console.print("starting two broker nodes …")
        one = running.start_node("node1")
        two = running.start_node("node2")
        console.print(f"cluster up in {time.monotonic() - started:.0f} s")

        clock = time.monotonic
        rates: dict[str, float] = {}
        every: list[ShareResult] = []  # every share of the run, for the trail's checks
        for label, backends in (("1 node", (one, one)), ("2 nodes", (one, two))):
            balancer = running.start_balancer(
                f"haproxy-{label.replace(' ', '')}", backends, https_port
            )
            load = Load(balancer.url, str(running.ca.ca_cert), running.partner, clock)
            try:
                await measure(load, args.people, 3.0)  # warm-up: connections, caches
                rate, delivered, others = await measure(load, args.people, args.throughput_seconds)
            finally:
                every += load.results
                await load.close()
            rates[label] = rate
            console.print(
                f"throughput through HAProxy, {label}: {rate:.1f} shares/s "
                f"({delivered} delivered, {others} not)"
            )
            if label == "1 node":
                running.stop_balancer(balancer)

        balancer = running.balancers[-1]
        load = Load(balancer.url, str(running.ca.ca_cert), running.partner, clock)
        console.print(f"fault run: {args.seconds:.0f} s, {args.people} people …")
        try:
            planned = await fault_run(running, load, args.people, args.seconds)
        finally:
            await load.close()
        results = list(load.results)
        every += results

        console.print("waiting for every abandoned flow's expiry row …")
        waited = checks.wait_for_every_end(running.postgres.url, SESSION_SECONDS + 60)
        findings = checks.Findings()
        hung = [r for r in results if r.outcome == "hung"]
        if hung:
            findings.fail(f"{len(hung)} share(s) hung (first at step {hung[0].step})")
        checks.check_trail(running.postgres.url, every, findings)
        checks.check_verify(running.node_env, findings)
        planted = checks.planted_values(running.partner.client_secret)
        keys = checks.check_redis(running.redis, planted, findings)
        handles = {r.token.encode() for r in every if r.token}
        handles |= {flow.encode() for r in every for flow in r.flow_ids}
        size = checks.check_logs(running.logs(), planted, handles, findings)

        console.print(fault_table(planned, results, findings))
        delivered = sum(1 for r in results if r.outcome == "delivered")
        failed = sum(1 for r in results if r.outcome == "failed")
        reasons = sorted({f"{r.step}: {r.reason}" for r in results if r.outcome == "failed"})
        console.print(
            f"fault run: {len(results)} shares, {delivered} delivered, {failed} failed cleanly "
            f"({'; '.join(reasons[:6]) or 'none'}), {len(hung)} hung; "
            f"{sum(r.restarts for r in results)} restarts from PAR, "
            f"{sum(r.retries for r in results)} partner retries"
        )
        console.print(
            f"deliveries interrupted by the node kill (row committed, answer lost, retry "
            f"refused): {findings.interrupted_deliveries}"
        )
        console.print(
            f"trail: {findings.flows} flows, {findings.flows_without_end} without an end, "
            f"{findings.flows_with_two_ends} with two; waited {waited:.0f} s for expiry rows; "
            f"{keys} Redis keys and {size / 1e6:.1f} MB of logs searched"
        )
        console.print(
            f"throughput through HAProxy: 1 node {rates['1 node']:.1f} shares/s, "
            f"2 nodes {rates['2 nodes']:.1f} shares/s "
            f"(× {rates['2 nodes'] / max(rates['1 node'], 1e-9):.2f})"
        )
        console.print(f"whole run: {time.monotonic() - started:.0f} s")
        for problem in findings.problems:
            console.print(f"[red]FAIL[/] {problem}")
        if findings.problems:
            return 1
        console.print("[green]cluster run passed[/]")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=66.0, help="length of the fault run")
    parser.add_argument("--people", type=int, default=8, help="shares under way at once")
    parser.add_argument("--throughput-seconds", type=float, default=12.0)
    parser.add_argument("--keep", action="store_true", help="keep the state directory (logs)")
    parser.add_argument(
        "--redis",
        choices=("sentinel", "cluster"),
        default="sentinel",
        help="Redis with Sentinel (a primary, a replica, three Sentinels) or Redis Cluster "
        "(three primaries, three replicas)",
    )
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="sharelock-cluster-"))
    try:
        return asyncio.run(main_async(args, state))
    finally:
        if args.keep:
            console.print(f"state and logs kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
