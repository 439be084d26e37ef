"""Whole shares through HTTP, at the HSM's pace: `sharelock serve --workers W` under load.

    .venv/bin/python tests/bench/bench_flow.py [--workers 1 2] [--shares 300] [--concurrency 8]
        [--paced] [--postgres | --no-postgres] [--long] [--profile]

For each database (SQLite; PostgreSQL too when SHARELOCK_TEST_POSTGRES_URL is set) and each W,
this starts `sharelock serve --workers W` as a subprocess on a private state directory (a fresh
SoftHSM token, a private redis-server, a fresh database, one registered partner), beside the
sandbox data sources in a subprocess of their own, then in the same run:

1. **raw**: W processes, each with its own `KeyLayer` on the same token, open envelopes sealed to
   the broker's active key for a fixed time (the broker idles meanwhile): openings/s and CPU
   ms per opening, the ceiling a share cannot beat (one opening per share);
2. **closed**: C concurrent simulated people, each running whole shares back to back, as a
   partner's back end and a browser do over HTTP (PAR, /authorize, the consent page, the JWKS,
   credentials, review, decision, Continue, /token, /v1/share), for N shares; every delivered
   payload is checked (IBAN, name, scopes, client), not only counted, and once the broker
   has stopped, the audit chain its workers wrote concurrently must still verify;
3. **paced** (`--paced`): an open loop starting shares at half the closed loop's rate, whatever
   the answers; the whole flow's latency counts from each share's scheduled start.

CPU comes from /proc (utime + stime) deltas over the timed part: the broker's whole process
tree (`serve` and its uvicorn workers), redis-server, the sandbox, and this generator itself.
The generator is one asyncio loop with keep-alive httpx clients; envelopes (sealing costs
CPU) and PKCE pairs are made before the timed part, one envelope per share (the broker
refuses a replayed one). The exit status is 1 if any share failed, else 0; targets are
reported, not enforced.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import http.cookiejar
import json
import multiprocessing as mp
import os
import queue
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import redis
from benchlib import (
    machine,
    percentile,
    proc_cmdline,
    proc_cpu_seconds,
    proc_rss_bytes,
    proc_tree,
    run_for,
    tree_cpu_seconds,
)
from redis_monitor import monitoring, report_lines, tally
from rich.console import Console
from rich.table import Table
from tests.support.databases import POSTGRES_ENV, postgres_schema, postgres_url
from tests.support.processes import Child, StartFailed, clean_env, start_sandbox, wait_for
from tests.support.whole_share import (
    CREDENTIALS,
    DATA_SOURCE,
    IBAN,
    REDIRECT_URI,
    SCOPE,
    Partner,
    check_payload,
    register_partner,
)

from sharelock.audit import verify_chain
from sharelock.config import Settings
from sharelock.db import create_engine_for, migrate
from sharelock.embedded import EmbeddedRedis, free_port
from sharelock.envelope import open_envelope
from sharelock.envelope.sealing import pick_encryption_key, seal_for
from sharelock.keys import KeyLayer, init_token

try:
    import sniffio  # noqa: F401
except ImportError:
    # httpcore tries `import sniffio` in every request, and a failed import is not cached: a
    # search of sys.path each time, a good part of the generator's CPU. None here makes the
    # import fail at once, with the same outcome (asyncio).
    sys.modules["sniffio"] = None  # type: ignore[assignment]

TOKEN_LABEL = "sharelock-bench-flow"
LOGIN_MEMBERS = {"login": 256, "password": 1024}  # what the broker accepts (flow/collection.py)

# Each step is one HTTP request; `flow` is the whole share (no think time).
STEPS = (
    "par",
    "authorize",
    "consent",
    "jwks",
    "credentials",
    "data",
    "decision",
    "continue",
    "token",
    "share",
)
ROUTES = {
    "par": "POST /par",
    "authorize": "GET /authorize",
    "consent": "GET /consent/{id}",
    "jwks": "GET /.well-known/jwks.json",
    "credentials": "POST …/credentials",
    "data": "GET …/data",
    "decision": "POST …/decision",
    "continue": "GET /consent/{id}/continue",
    "token": "POST /token",
    "share": "GET /v1/share",
}
RAW_ENVELOPES = 64
READY_TIMEOUT_S = 90.0
REQUEST_TIMEOUT_S = 60.0

# The targets (issue "the whole share at the HSM's pace"), on the 2-core reference machine.
CPU_RATIO_MAX = 3.0  # broker CPU per share / CPU of one raw opening
SCALING_MIN = 1.7  # shares/s at W=2 / shares/s at W=1
STEP_P99_MAX_MS = 50.0  # /par, /token, /v1/share, paced at half the maximum rate
FLOW_P99_MAX_MS = 400.0
RSS_DRIFT_MAX = 0.10  # over --long-shares

console = Console(width=None if sys.stdout.isatty() else 220, highlight=False)


# -- processes ---------------------------------------------------------------------------------


def wait_ready(url: str, child: Child, timeout: float = READY_TIMEOUT_S) -> None:
    try:
        wait_for(url, child, timeout=timeout)
    except StartFailed as exc:
        raise SystemExit(str(exc)) from None


@dataclass
class Broker:
    child: Child
    url: str
    workers: int

    def worker_pids(self) -> list[int]:
        """The uvicorn workers: the `serve` process itself for one worker, else its spawned
        children (not multiprocessing's resource tracker)."""
        if self.workers == 1:
            return [self.child.pid]
        return [
            pid
            for pid in proc_tree(self.child.pid)
            if pid != self.child.pid and "spawn_main" in proc_cmdline(pid)
        ]


def start_broker(settings_env: dict[str, str], workers: int, log_path: Path) -> Broker:
    port, operator_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env() | settings_env
    env |= {
        "SHARELOCK_PORT": str(port),
        "SHARELOCK_OPERATOR_PORT": str(operator_port),
        "SHARELOCK_ISSUER": url,
        "SHARELOCK_LOG_LEVEL": "warning",
        # One generator address and one partner: the production limits would stop the run.
        "SHARELOCK_LIMITS__PER_ADDRESS": "1000000/minute",
        "SHARELOCK_LIMITS__PAR_PER_PARTNER": "1000000/minute",
        "SHARELOCK_LIMITS__TOKEN_PER_PARTNER": "1000000/minute",
        "SHARELOCK_LIMITS__FAILED_AUTH_PER_ADDRESS": "1000000/minute",
    }
    sharelock = str(Path(sys.executable).with_name("sharelock"))
    child = Child(
        f"sharelock serve --workers {workers}",
        [sharelock, "serve", "--workers", str(workers)],
        env,
        log_path,
    )
    broker = Broker(child, url, workers)
    try:
        wait_ready(url + "/readyz", child)
        # Every worker ready: each answers /readyz itself, but which one answers is the
        # kernel's choice; wait until all W processes exist and a few probes pass.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(broker.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.2)
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(8 * workers):
                if client.get("/readyz").status_code != 200:
                    raise SystemExit(f"/readyz failed:\n{child.log_tail()}")
    except BaseException:
        child.stop()
        raise
    return broker


def redis_commands(url: str) -> dict[str, int]:
    """Calls per Redis command so far (INFO commandstats)."""
    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def print_redis_commands(url: str, before: dict[str, int], shares: int) -> None:
    """Redis commands per share during a run, the busiest first (round trips are fewer:
    pipelines and scripts carry several)."""
    after = redis_commands(url)
    spent = {name: calls - before.get(name, 0) for name, calls in after.items()}
    spent = {name: calls for name, calls in spent.items() if calls > 0 and name != "info"}
    if not shares or not spent:
        return
    total = sum(spent.values()) / shares
    top = sorted(spent.items(), key=lambda item: -item[1])[:8]
    listed = ", ".join(f"{name} {calls / shares:.1f}" for name, calls in top)
    console.print(f"  redis: {total:.1f} commands per share ({listed})")


def start_profiler(pid: int, out: Path) -> Child | None:
    tool = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(tool).exists():
        console.print("[yellow]--profile: py-spy is not installed (pip install py-spy)[/]")
        return None
    argv = [tool, "record", "--pid", str(pid), "--format", "raw", "-o", str(out)]
    argv += ["--rate", "250", "--nonblocking", "--gil"]  # CPU: threads holding the GIL
    child = Child("py-spy", argv, dict(os.environ), out.with_suffix(".log"))
    time.sleep(1.0)  # attach
    if not child.alive():
        console.print(f"[yellow]py-spy did not start:[/] {child.log_tail(500)}")
        return None
    return child


# -- raw HSM rate: W processes opening envelopes in the same token ------------------------------


def _raw_process(
    settings: Settings,
    envelopes: list[str],
    seconds: float,
    start: Barrier,
    results: Any,
) -> None:
    keys = KeyLayer(settings)  # this process's own PKCS#11 session, as a worker has
    try:
        for envelope in envelopes[:3]:  # algorithm probe, handle cache
            open_envelope(envelope, keys).wipe()

        def one(i: int) -> None:
            with open_envelope(envelopes[i % len(envelopes)], keys) as opened:
                if opened.json_object(dict(LOGIN_MEMBERS))["login"] != "alice":
                    raise AssertionError("wrong envelope content")

        start.wait()
        cpu = time.process_time()
        rate = run_for(seconds, one)
        results.put((rate.ops, rate.seconds, time.process_time() - cpu))
    finally:
        keys.close()


@dataclass(frozen=True)
class RawRate:
    per_second: float
    cpu_ms: float  # CPU of one opening, in the opening process


def measure_raw(
    settings: Settings, envelopes: list[str], seconds: float, processes: int
) -> RawRate:
    ctx = mp.get_context("spawn")  # like uvicorn's workers: a fresh interpreter each
    start = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    children = [
        ctx.Process(target=_raw_process, args=(settings, envelopes, seconds, start, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        start.wait(timeout=120)
        collected = []
        while len(collected) < processes:
            try:
                collected.append(results.get(timeout=1))
            except queue.Empty:
                if any(child.exitcode not in (None, 0) for child in children):
                    raise SystemExit("a raw-opening process failed") from None
    finally:
        for child in children:
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join()
    if any(child.exitcode != 0 for child in children):
        raise SystemExit("a raw-opening process failed")
    ops = sum(c[0] for c in collected)
    return RawRate(
        per_second=ops / max(c[1] for c in collected),
        cpu_ms=sum(c[2] for c in collected) / ops * 1000,
    )


# -- one share, as a partner's back end and a browser do it ------------------------------------


@dataclass(frozen=True)
class Material:
    """What one share needs that costs CPU to make: made before the timed part."""

    envelope: str
    verifier: str
    challenge: str
    state: str


def make_material(jwk: dict[str, Any], count: int) -> list[Material]:
    made = []
    for _ in range(count):
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        made.append(
            Material(seal_for(jwk, CREDENTIALS), verifier, challenge, secrets.token_urlsafe(12))
        )
    return made


class StepFailed(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


def _why(response: httpx.Response) -> str:
    reason = f"HTTP {response.status_code}"
    if response.headers.get("content-type", "").startswith("application/json"):
        with contextlib.suppress(ValueError, AttributeError):
            reason += f" {response.json().get('error')}"
    return reason


class _NoCookies(http.cookiejar.CookieJar):
    """One generator stands for many browsers: it keeps no cookie; each share sends its own."""

    def __init__(self) -> None:
        super().__init__(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


@dataclass
class Stats:
    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    flows: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    late: list[float] = field(default_factory=list)  # paced: start lag behind the schedule


class Driver:
    """Drives whole shares over two keep-alive connection pools: the partner's back end (PAR,
    token, resource) and "the browsers" (every person's requests; cookies set per share)."""

    def __init__(
        self,
        url: str,
        partner: Partner,
        kid: str,
        pool_size: int,
        *,
        jwks_per_share: bool,
        browser_per_share: bool,
    ) -> None:
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
        self.timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
        self.url = url
        self.partner = partner
        self.kid = kid
        self.jwks_per_share = jwks_per_share
        self.browser_per_share = browser_per_share
        # Made once: httpx would otherwise load the CA bundle for every client (~60 ms of CPU),
        # although every URL here is plain http.
        self.tls = httpx.create_ssl_context()
        self.backend = httpx.AsyncClient(
            base_url=url, limits=limits, timeout=self.timeout, verify=self.tls
        )
        self.browser = httpx.AsyncClient(
            base_url=url, limits=limits, timeout=self.timeout, verify=self.tls, cookies=_NoCookies()
        )

    def new_browser(self) -> httpx.AsyncClient:
        """A person's own browser: its own keep-alive connection, which the kernel hands to
        whichever worker accepts it (as real traffic spreads over the workers)."""
        return httpx.AsyncClient(
            base_url=self.url,
            limits=httpx.Limits(max_connections=1),
            timeout=self.timeout,
            verify=self.tls,
            cookies=_NoCookies(),
        )

    async def close(self) -> None:
        await self.backend.aclose()
        await self.browser.aclose()

    async def share(self, m: Material, stats: Stats, started: float | None = None) -> None:
        began = time.perf_counter() if started is None else started
        timings: dict[str, float] = {}
        try:
            await self._share(m, timings)
        except StepFailed as failure:
            stats.errors[f"{failure.step}: {failure.reason}"] += 1
        except httpx.HTTPError as exc:
            step = next((s for s in STEPS if s not in timings), "?")
            stats.errors[f"{step}: {type(exc).__name__}"] += 1
        else:
            stats.ok += 1
            stats.flows.append(time.perf_counter() - began)
        for step, seconds in timings.items():
            stats.steps[step].append(seconds)

    async def _timed(
        self, timings: dict[str, float], step: str, request: Any, status: int
    ) -> httpx.Response:
        before = time.perf_counter()
        response: httpx.Response = await request
        if response.status_code != status:
            raise StepFailed(step, _why(response))
        timings[step] = time.perf_counter() - before
        return response

    async def _share(self, m: Material, t: dict[str, float]) -> None:
        if not self.browser_per_share:
            await self._steps(m, t, self.browser)
            return
        async with self.new_browser() as web:
            await self._steps(m, t, web)

    async def _steps(self, m: Material, t: dict[str, float], web: httpx.AsyncClient) -> None:
        partner_auth = {"Authorization": self.partner.basic}
        pushed = await self._timed(
            t,
            "par",
            self.backend.post(
                "/par",
                headers=partner_auth,
                data={
                    "response_type": "code",
                    "redirect_uri": REDIRECT_URI,
                    "scope": SCOPE,
                    "state": m.state,
                    "code_challenge": m.challenge,
                    "code_challenge_method": "S256",
                },
            ),
            201,
        )
        request_uri = pushed.json()["request_uri"]
        authorized = await self._timed(
            t,
            "authorize",
            web.get(
                "/authorize",
                params={"client_id": self.partner.client_id, "request_uri": request_uri},
            ),
            303,
        )
        location = authorized.headers.get("location", "")
        if not location.startswith("/consent/"):
            raise StepFailed("authorize", "no redirect to the consent page")
        flow_id = location.rsplit("/", 1)[-1]
        name = f"sl_flow_{flow_id}="
        cookie = next(
            (
                c.split(";", 1)[0]
                for c in authorized.headers.get_list("set-cookie")
                if c.startswith(name)
            ),
            None,
        )
        if cookie is None:
            raise StepFailed("authorize", "no flow cookie")
        browser = {"Cookie": cookie}
        await self._timed(t, "consent", web.get(location, headers=browser), 200)
        if self.jwks_per_share:  # as the consent page does before encrypting
            jwks = await self._timed(t, "jwks", web.get("/.well-known/jwks.json"), 200)
            if pick_encryption_key(jwks.json())["kid"] != self.kid:
                raise StepFailed("jwks", "the active key changed")
        flow = f"/api/flows/{flow_id}"
        collected = await self._timed(
            t,
            "credentials",
            web.post(
                f"{flow}/credentials",
                headers=browser,
                json={"data_source": DATA_SOURCE, "credentials": m.envelope},
            ),
            200,
        )
        status = collected.json().get("status")
        if status != "collected":
            raise StepFailed("credentials", f"status {status}")
        review = await self._timed(t, "data", web.get(f"{flow}/data", headers=browser), 200)
        if not any(f.get("value") == IBAN for f in review.json().get("fields", [])):
            raise StepFailed("data", "the IBAN is not in the review")
        decided = await self._timed(
            t,
            "decision",
            web.post(f"{flow}/decision", headers=browser, json={"approve": True, "omit": []}),
            200,
        )
        left = await self._timed(
            t, "continue", web.get(decided.json()["redirect_to"], headers=browser), 303
        )
        callback = parse_qs(urlsplit(left.headers.get("location", "")).query)
        if callback.get("state") != [m.state] or callback.get("iss") != [self.url]:
            raise StepFailed("decision", "wrong state or iss in the callback")
        token = await self._timed(
            t,
            "token",
            self.backend.post(
                "/token",
                headers=partner_auth,
                data={
                    "grant_type": "authorization_code",
                    "code": callback["code"][0],
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": m.verifier,
                },
            ),
            200,
        )
        grant = token.json()
        if grant.get("token_type", "").lower() != "bearer":
            raise StepFailed("token", "not a bearer token")
        shared = await self._timed(
            t,
            "share",
            self.backend.get(
                "/v1/share", headers={"Authorization": f"Bearer {grant['access_token']}"}
            ),
            200,
        )
        problem = check_payload(shared.json(), self.partner.client_id)
        if problem:
            raise StepFailed("share", f"wrong payload ({problem})")


# -- the timed runs ----------------------------------------------------------------------------


@dataclass
class Meters:
    """CPU of every party over the timed part, from /proc; RSS of the workers."""

    broker: Broker
    redis_pid: int
    sandbox_pid: int
    cpu: dict[str, float] = field(default_factory=dict)
    rss_start: dict[int, int] = field(default_factory=dict)
    rss_end: dict[int, int] = field(default_factory=dict)
    worker_cpu: dict[int, float] = field(default_factory=dict)
    wall: float = 0.0
    _start: dict[str, float] = field(default_factory=dict)
    _workers: dict[int, float] = field(default_factory=dict)
    _t0: float = 0.0

    def _read(self) -> dict[str, float]:
        return {
            "broker": tree_cpu_seconds(self.broker.child.pid),
            "redis": proc_cpu_seconds(self.redis_pid),
            "sandbox": tree_cpu_seconds(self.sandbox_pid),
            "generator": time.process_time(),
        }

    def start(self) -> None:
        workers = self.broker.worker_pids()
        self.rss_start = {pid: proc_rss_bytes(pid) for pid in workers}
        self._workers = {pid: proc_cpu_seconds(pid) for pid in workers}
        self._start = self._read()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._t0
        end = self._read()
        self.cpu = {k: end[k] - self._start[k] for k in end}
        self.worker_cpu = {p: proc_cpu_seconds(p) - c for p, c in self._workers.items()}
        self.rss_end = {pid: proc_rss_bytes(pid) for pid in self._workers}


async def closed_loop(
    driver: Driver, material: Iterator[Material], shares: int, concurrency: int, stats: Stats
) -> None:
    left = shares

    async def person() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await driver.share(next(material), stats)

    await asyncio.gather(*(person() for _ in range(concurrency)))


async def paced(
    driver: Driver, material: Iterator[Material], shares: int, rate: float, stats: Stats
) -> None:
    """Open loop: share i starts at t0 + i / rate, whether earlier ones finished or not."""
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    tasks = []
    for i in range(shares):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        stats.late.append(max(0.0, time.perf_counter() - due))
        tasks.append(loop.create_task(driver.share(next(material), stats, started=due)))
    await asyncio.gather(*tasks)


@dataclass
class Run:
    backend: str
    workers: int
    mode: str  # "closed" | "paced" | "long"
    load: str  # "C=8" | "12.3/s"
    raw: RawRate
    stats: Stats
    meters: Meters
    broker_log: Counter[str]
    rss_series: list[tuple[int, int]] = field(default_factory=list)  # (shares done, MiB)

    @property
    def rate(self) -> float:
        return self.stats.ok / self.meters.wall if self.meters.wall else 0.0

    def per_share_ms(self, party: str) -> float:
        return self.meters.cpu[party] / self.stats.ok * 1000 if self.stats.ok else float("nan")

    @property
    def errors(self) -> int:
        return sum(self.stats.errors.values())


def broker_log_events(path: Path, since: int) -> tuple[Counter[str], int]:
    """Warning-or-worse lines the broker wrote after byte `since`, by (level, logger, event)."""
    seen: Counter[str] = Counter()
    try:
        with path.open("rb") as handle:
            handle.seek(since)
            chunk = handle.read()
    except OSError:
        return seen, since
    for line in chunk.decode(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if line.strip():
                seen[f"(not JSON) {line.strip()[:120]}"] += 1
            continue
        if isinstance(entry, dict) and entry.get("level", "").lower() != "info":
            seen[f"{entry.get('level')} {entry.get('logger')}: {entry.get('event')}"[:160]] += 1
    return seen, since + len(chunk)


def drive(
    broker: Broker,
    partner: Partner,
    jwk: dict[str, Any],
    args: argparse.Namespace,
    meters_for: Any,
    *,
    mode: str,
    shares: int,
    rate: float = 0.0,
    sample_rss_every: int = 0,
) -> tuple[Stats, Meters, list[tuple[int, int]]]:
    """Warm up, then one timed run (closed or paced), measured."""
    material = iter(make_material(jwk, args.warmup + shares))
    series: list[tuple[int, int]] = []

    async def main() -> tuple[Stats, Meters]:
        pool = max(args.concurrency, 4) * 2
        driver = Driver(
            broker.url,
            partner,
            jwk["kid"],
            pool,
            jwks_per_share=args.jwks == "per-share",
            browser_per_share=args.browsers == "per-share",
        )
        try:
            warm = Stats()
            await closed_loop(driver, material, args.warmup, args.concurrency, warm)
            if warm.errors:
                console.print(f"[yellow]warm-up errors:[/] {dict(warm.errors)}")
            stats = Stats()
            meters: Meters = meters_for(broker)
            sampler = None
            if sample_rss_every:

                async def sample() -> None:
                    mark = 0
                    while True:
                        if stats.ok >= mark:
                            rss = sum(proc_rss_bytes(p) for p in broker.worker_pids())
                            series.append((stats.ok, rss // 2**20))
                            mark += sample_rss_every
                        await asyncio.sleep(0.25)

                sampler = asyncio.get_running_loop().create_task(sample())
            meters.start()
            if mode == "paced":
                await paced(driver, material, shares, rate, stats)
            else:
                await closed_loop(driver, material, shares, args.concurrency, stats)
            meters.stop()
            if sampler is not None:
                sampler.cancel()
                series.append((stats.ok, sum(meters.rss_end.values()) // 2**20))
            return stats, meters
        finally:
            await driver.close()

    stats, meters = asyncio.run(main())
    return stats, meters, series


def bench_backend(
    backend: str,
    database_url: str,
    state: Path,
    settings: Settings,
    redis_server: EmbeddedRedis,
    sandbox: Child,
    sandbox_url: str,
    args: argparse.Namespace,
    workers: int,
) -> list[Run]:
    engine = create_engine_for(database_url)
    try:
        migrate(engine)
        partner = register_partner(engine, "Bench Partner", "benchmark")
    finally:
        engine.dispose()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()  # each run starts from an empty store

    env = {
        "SHARELOCK_STATE_DIR": str(state),
        "SHARELOCK_HSM_TOKEN_LABEL": TOKEN_LABEL,
        "SHARELOCK_REDIS_URL": redis_server.url,
        "SHARELOCK_DATABASE_URL": database_url,
        "SHARELOCK_SANDBOX_URL": sandbox_url,
    }
    log_path = state / f"broker-{backend}-w{workers}.log"
    console.print(f"[bold]{backend}, W={workers}[/]: starting the broker …")
    broker = start_broker(env, workers, log_path)
    runs: list[Run] = []
    try:
        jwks = httpx.get(broker.url + "/.well-known/jwks.json", timeout=10).json()
        jwk = dict(pick_encryption_key(jwks))

        raw_envelopes = [seal_for(jwk, CREDENTIALS) for _ in range(RAW_ENVELOPES)]
        raw = measure_raw(settings, raw_envelopes, args.raw_seconds, workers)
        console.print(
            f"  raw: {raw.per_second:,.0f} openings/s with {workers} process(es), "
            f"{raw.cpu_ms:.2f} ms CPU per opening"
        )

        def meters_for(b: Broker) -> Meters:
            return Meters(b, redis_server.pid or 0, sandbox.pid)

        log_offset = log_path.stat().st_size if log_path.exists() else 0

        def record(mode: str, load: str, stats: Stats, meters: Meters, series: Any) -> Run:
            nonlocal log_offset
            events, log_offset = broker_log_events(log_path, log_offset)
            run = Run(backend, workers, mode, load, raw, stats, meters, events, series)
            console.print(
                f"  {mode} {load}: {stats.ok} shares in {meters.wall:.1f} s = "
                f"{run.rate:.1f}/s, broker {run.per_share_ms('broker'):.1f} ms CPU/share, "
                f"{run.errors} error(s)"
            )
            runs.append(run)
            return run

        profile_path = Path(tempfile.gettempdir()) / f"sharelock-profile-{backend}-w{workers}.txt"
        profiler = None
        if args.profile:
            profiler = start_profiler(broker.worker_pids()[0], profile_path)
        commands_before = redis_commands(redis_server.url)
        stats, meters, _ = drive(
            broker, partner, jwk, args, meters_for, mode="closed", shares=args.shares
        )
        # The counts cover the untimed warm-up shares too.
        print_redis_commands(redis_server.url, commands_before, args.warmup + stats.ok)
        if profiler is not None:
            profiler.stop(timeout=30, sig=signal.SIGINT)
            print_profile(profile_path, workers)
        closed = record("closed", f"C={args.concurrency}", stats, meters, [])

        if args.redis_monitor:
            trace = state / f"redis-monitor-{backend}-w{workers}.txt"
            with monitoring(redis_server.url, trace):
                stats, _, _ = drive(
                    broker, partner, jwk, args, meters_for, mode="closed", shares=args.redis_monitor
                )
            # The monitor saw the untimed warm-up shares too.
            for line in report_lines(tally(trace), args.warmup + stats.ok):
                console.print("  " + line, markup=False)

        if args.paced and closed.rate > 0:
            rate = closed.rate / 2
            shares = max(50, min(args.shares, int(rate * args.paced_seconds)))
            stats, meters, _ = drive(
                broker, partner, jwk, args, meters_for, mode="paced", shares=shares, rate=rate
            )
            record("paced", f"{rate:.1f}/s", stats, meters, [])

        if args.long and workers == max(args.workers):
            stats, meters, series = drive(
                broker,
                partner,
                jwk,
                args,
                meters_for,
                mode="closed",
                shares=args.long_shares,
                sample_rss_every=max(1, args.long_shares // 20),
            )
            record("long", f"C={args.concurrency}", stats, meters, series)
    finally:
        broker.child.stop()
    if not chain_verifies(database_url):
        for run in runs:
            run.stats.errors["audit chain does not verify"] += 1
    return runs


def chain_verifies(database_url: str) -> bool:
    """After a run: the audit trail that W workers wrote concurrently, group commits and all,
    is still one chain that verifies (the speed must not have cost a guarantee)."""
    engine = create_engine_for(database_url)
    try:
        report = verify_chain(engine)
    finally:
        engine.dispose()
    if report.ok:
        console.print(f"  audit: {report.rows_checked} rows, the chain verifies")
    else:
        console.print(f"  [red]audit: the chain does not verify ({report.reason})[/]")
    return report.ok


# -- the report --------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:,.1f}"


def verdict(ok: bool | None) -> str:
    return "[dim]n/a[/]" if ok is None else ("[green]PASS[/]" if ok else "[red]FAIL[/]")


def report(runs: Sequence[Run], args: argparse.Namespace) -> None:
    main = Table(
        title="Whole shares through `sharelock serve` (CPU per complete share, from /proc)"
    )
    for header in (
        "db",
        "W",
        "run",
        "raw open/s",
        "raw CPU ms/open",
        "shares/s",
        "shares/raw",
        "broker CPU ms/share",
        "÷ raw open CPU",
        "worker CPU split",
        "redis ms/share",
        "sandbox ms/share",
        "generator ms/share",
        "flow p50",
        "flow p95",
        "flow p99",
        "errors",
        "worker RSS MiB",
    ):
        main.add_column(header, justify="left" if header in ("db", "run") else "right")
    for run in runs:
        split = sum(run.meters.worker_cpu.values())
        main.add_row(
            run.backend,
            str(run.workers),
            f"{run.mode} {run.load}",
            f"{run.raw.per_second:,.0f}",
            f"{run.raw.cpu_ms:.2f}",
            f"{run.rate:.1f}",
            f"{run.rate / run.raw.per_second:.3f}",
            f"{run.per_share_ms('broker'):.1f}",
            f"{run.per_share_ms('broker') / run.raw.cpu_ms:.1f}",
            "/".join(f"{c / split * 100:.0f}" for c in run.meters.worker_cpu.values())
            if split
            else "-",
            f"{run.per_share_ms('redis'):.2f}",
            f"{run.per_share_ms('sandbox'):.1f}",
            f"{run.per_share_ms('generator'):.1f}",
            ms(percentile(run.stats.flows, 50)),
            ms(percentile(run.stats.flows, 95)),
            ms(percentile(run.stats.flows, 99)),
            f"[red]{run.errors}[/]" if run.errors else "0",
            f"{sum(run.meters.rss_start.values()) / 2**20:.0f}→"
            f"{sum(run.meters.rss_end.values()) / 2**20:.0f}",
        )
    console.print()
    console.print(main)
    console.print(
        "latencies in ms; shares/raw = shares/s ÷ raw openings/s with W processes; "
        "÷ raw open CPU = broker CPU per share ÷ CPU of one raw opening; worker CPU split = "
        "each worker's share of the workers' CPU; paced flow latencies count from the "
        "scheduled start"
    )

    steps = Table(title="Per step latency, ms (p50 / p95 / p99)")
    steps.add_column("step")
    for run in runs:
        steps.add_column(f"{run.backend} W={run.workers}\n{run.mode} {run.load}", justify="right")
    for step in (*STEPS, "flow"):
        cells = []
        for run in runs:
            values = run.stats.flows if step == "flow" else run.stats.steps[step]
            cells.append(" / ".join(ms(percentile(values, p)) for p in (50, 95, 99)))
        steps.add_row(ROUTES.get(step, "whole flow"), *cells)
    console.print()
    console.print(steps)

    for run in runs:
        if run.stats.errors:
            console.print(f"[red]errors[/] {run.backend} W={run.workers} {run.mode}:")
            for reason, count in run.stats.errors.most_common(10):
                console.print(f"  {count:6d} × {reason}")
        if run.broker_log:
            console.print(f"broker log (warning+) {run.backend} W={run.workers} {run.mode}:")
            for event, count in run.broker_log.most_common(10):
                console.print(f"  {count:6d} × {event}")
        if run.stats.late:
            lag = percentile(run.stats.late, 99)
            if lag > 0.005:
                console.print(
                    f"[yellow]paced {run.backend} W={run.workers}: the generator started "
                    f"shares up to {lag * 1000:.0f} ms late (p99)[/]"
                )
        if run.rss_series:
            series = ", ".join(f"{done}:{mib}" for done, mib in run.rss_series)
            console.print(
                f"worker RSS MiB by shares done ({run.backend} W={run.workers}): {series}"
            )

    targets = Table(title="Targets (informative; this machine: " + machine() + ")")
    for header in ("target", "db", "measured", "result"):
        targets.add_column(header)
    for backend in dict.fromkeys(r.backend for r in runs):
        closed = {r.workers: r for r in runs if r.backend == backend and r.mode == "closed"}
        for w, run in sorted(closed.items()):
            ratio = run.per_share_ms("broker") / run.raw.cpu_ms
            targets.add_row(
                f"W={w}: broker CPU/share ≤ {CPU_RATIO_MAX:g} × one raw opening",
                backend,
                f"{run.per_share_ms('broker'):.1f} ms = {ratio:.1f} × {run.raw.cpu_ms:.2f} ms",
                verdict(ratio <= CPU_RATIO_MAX),
            )
        if 1 in closed and 2 in closed:
            scale = closed[2].rate / closed[1].rate if closed[1].rate else 0.0
            targets.add_row(
                f"shares/s W=2 ≥ {SCALING_MIN:g} × W=1",
                backend,
                f"{closed[2].rate:.1f} / {closed[1].rate:.1f} = {scale:.2f}",
                verdict(scale >= SCALING_MIN),
            )
        else:
            targets.add_row(f"shares/s W=2 ≥ {SCALING_MIN:g} × W=1", backend, "-", verdict(None))
        paced_runs = [r for r in runs if r.backend == backend and r.mode == "paced"]
        for run in paced_runs:
            for step in ("par", "token", "share"):
                p99 = percentile(run.stats.steps[step], 99) * 1000
                targets.add_row(
                    f"W={run.workers} paced {run.load}: p99 {ROUTES[step]}"
                    f" ≤ {STEP_P99_MAX_MS:g} ms",
                    backend,
                    f"{p99:.1f} ms",
                    verdict(p99 <= STEP_P99_MAX_MS),
                )
            p99 = percentile(run.stats.flows, 99) * 1000
            targets.add_row(
                f"W={run.workers} paced {run.load}: p99 whole flow ≤ {FLOW_P99_MAX_MS:g} ms",
                backend,
                f"{p99:.1f} ms",
                verdict(p99 <= FLOW_P99_MAX_MS),
            )
        if not paced_runs:
            targets.add_row("paced p99 (run with --paced)", backend, "-", verdict(None))
        errors = sum(r.errors for r in runs if r.backend == backend)
        targets.add_row("0 errors", backend, str(errors), verdict(errors == 0))
        long = [r for r in runs if r.backend == backend and r.mode == "long"]
        if long and long[0].rss_series:
            series = long[0].rss_series
            first = next((mib for done, mib in series if done > 0), series[0][1])
            drift = (series[-1][1] - first) / first if first else 0.0
            targets.add_row(
                f"worker RSS flat ±{RSS_DRIFT_MAX:.0%} over {args.long_shares:,} shares",
                backend,
                f"{first} → {series[-1][1]} MiB ({drift:+.1%})",
                verdict(abs(drift) <= RSS_DRIFT_MAX),
            )
        else:
            targets.add_row(
                f"worker RSS flat ±{RSS_DRIFT_MAX:.0%} (run with --long)",
                backend,
                "-",
                verdict(None),
            )
    console.print()
    console.print(targets)


def print_profile(path: Path, workers: int, top: int = 25) -> None:
    """Top functions of py-spy's raw (collapsed) output, by self and by total samples."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        console.print(f"[yellow]no profile written to {path}[/]")
        return
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        console.print(f"[yellow]empty profile {path}[/]")
        return
    ours = Counter(
        {f: n for f, n in total.items() if f.split(" (", 1)[-1].startswith("sharelock/")}
    )
    for title, counts in (("self", own), ("total", total), ("total, Sharelock's code", ours)):
        table = Table(title=f"py-spy, one worker of W={workers}: top {top} by {title} time")
        table.add_column("%", justify="right")
        table.add_column("samples", justify="right")
        table.add_column("function (file)")
        for frame, n in counts.most_common(top):
            table.add_row(f"{n / samples * 100:.1f}", str(n), frame)
        console.print(table)
    console.print(f"profile: {path} ({samples} samples; collapsed stacks, e.g. for flamegraph.pl)")


def _frame(frame: str) -> str:
    """`fn (path/to/file.py:123)` → `fn (to/file.py)`: aggregated per function."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name


# -- main ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def databases(use_postgres: bool, state: Path, workers: int) -> Iterator[list[tuple[str, str]]]:
    """Fresh databases for one W: a SQLite file, and a PostgreSQL schema when asked."""
    with contextlib.ExitStack() as stack:
        found = [("sqlite", f"sqlite:///{state / f'bench-w{workers}.db'}")]
        if use_postgres:
            found.append(("postgresql", stack.enter_context(postgres_schema())))
        yield found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="values of W")
    parser.add_argument("--shares", type=int, default=300, help="shares per timed run")
    parser.add_argument("--concurrency", type=int, default=8, help="closed loop: people at once")
    parser.add_argument("--warmup", type=int, default=24, help="untimed shares before each run")
    parser.add_argument("--raw-seconds", type=float, default=4.0, help="raw-opening duration")
    parser.add_argument(
        "--paced", action="store_true", help="also an open loop at half the closed loop's rate"
    )
    parser.add_argument(
        "--paced-seconds", type=float, default=30.0, help="paced run: at most this long"
    )
    parser.add_argument(
        "--jwks",
        choices=("per-share", "per-run"),
        default="per-share",
        help="fetch the JWKS in every share (as the consent page does) or once per run",
    )
    parser.add_argument(
        "--browsers",
        choices=("per-share", "pooled"),
        default="per-share",
        help="each share's browser requests on a connection of its own (a person's browser), "
        "or all on one keep-alive pool (few connections: the kernel may give most to one worker)",
    )
    parser.add_argument(
        "--postgres",
        action=argparse.BooleanOptionalAction,
        default=postgres_url() is not None,
        help=f"also PostgreSQL (default: on when {POSTGRES_ENV} is set)",
    )
    parser.add_argument("--long", action="store_true", help="memory run at the largest W")
    parser.add_argument("--long-shares", type=int, default=10_000)
    parser.add_argument(
        "--profile", action="store_true", help="py-spy record one worker during the closed loop"
    )
    parser.add_argument(
        "--redis-monitor",
        type=int,
        default=0,
        metavar="N",
        help="after the closed loop, N more shares under Redis MONITOR (untimed): the "
        "Redis commands per share by command and by what they name",
    )
    parser.add_argument("--keep", action="store_true", help="keep the state directory (logs)")
    args = parser.parse_args()
    if args.postgres and postgres_url() is None:
        parser.error(f"--postgres needs {POSTGRES_ENV}")

    console.print(f"machine: {machine()}")
    state = Path(tempfile.mkdtemp(prefix="sharelock-bench-flow-"))
    runs: list[Run] = []
    sandbox: Child | None = None
    try:
        settings = Settings(state_dir=state, hsm_token_label=TOKEN_LABEL)
        init_token(settings)
        layer = KeyLayer(settings)
        try:
            layer.ensure_keys()
            key = layer.active_key()
            console.print(
                f"token: SoftHSM at {settings.pkcs11_module}, RSA-{key.modulus_bits}, "
                f"{layer.preferred_algorithm()} + A256GCM; JWKS fetched {args.jwks}, "
                f"browser connections {args.browsers}, partner pool keep-alive; "
                f"closed loop C={args.concurrency}, {args.shares} shares per run"
            )
        finally:
            layer.close()
        sandbox, sandbox_url = start_sandbox(state)
        with EmbeddedRedis(state / "redis", maxmemory="1gb") as redis_server:
            for workers in args.workers:
                with databases(args.postgres, state, workers) as found:
                    for backend, url in found:
                        runs += bench_backend(
                            backend,
                            url,
                            state,
                            settings,
                            redis_server,
                            sandbox,
                            sandbox_url,
                            args,
                            workers,
                        )
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
    finally:
        if sandbox is not None:
            sandbox.stop()
        if args.keep:
            console.print(f"state and logs kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)
    if runs:
        report(runs, args)
    return 1 if any(r.errors for r in runs) or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
