"""Shared pieces of the benchmarks: a throw-away SoftHSM token, envelopes, OpenSSL's reference
figure, and plain-text tables. Not collected by pytest (`--ignore=tests/bench`)."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as `python tests/bench/x.py`: make `tests.support` importable
    sys.path.insert(0, str(REPO))

from tests.support.jwe import build  # noqa: E402

from sharelock.config import Settings  # noqa: E402
from sharelock.keys import KeyLayer, init_token  # noqa: E402

TOKEN_LABEL = "sharelock-bench"


@contextmanager
def bench_settings() -> Iterator[Settings]:
    """Settings for a fresh token in a temporary state directory, with its keys generated; the
    directory is removed afterwards. Each process opens its own `KeyLayer` from these."""
    state = Path(tempfile.mkdtemp(prefix="sharelock-bench-"))
    try:
        settings = Settings(state_dir=state, hsm_token_label=TOKEN_LABEL)
        init_token(settings)
        layer = KeyLayer(settings)
        try:
            layer.ensure_keys()
        finally:
            layer.close()
        yield settings
    finally:
        shutil.rmtree(state, ignore_errors=True)


def make_envelopes(keys: KeyLayer, count: int) -> list[str]:
    """`count` distinct compact JWEs of a credentials payload, for the active key."""
    jwk = keys.jwks()["keys"][0]
    payload = b'{"login":"alice","password":"alice-pass"}'
    return [build(jwk, payload, alg=jwk["alg"]).compact() for _ in range(count)]


@dataclass(frozen=True)
class Rate:
    ops: int
    seconds: float
    latencies: Sequence[float]  # seconds per operation

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile_ms(self, pct: float) -> float:
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0] * 1000
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[int(pct) - 1] * 1000


def run_for(seconds: float, operation: Callable[[int], object]) -> Rate:
    """Call `operation(i)` for i = 0, 1, … until `seconds` have passed."""
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + seconds
    i = 0
    now = start
    while now < deadline:
        before = time.perf_counter()
        operation(i)
        now = time.perf_counter()
        latencies.append(now - before)
        i += 1
    return Rate(i, now - start, latencies)


def openssl_rsa4096_sign_per_second(processes: int, seconds: int = 3) -> float | None:
    """This machine's `openssl speed -seconds S [-multi N] rsa4096` private-key ops/s."""
    tool = shutil.which("openssl")
    if tool is None:
        return None
    argv = [tool, "speed", "-seconds", str(seconds)]
    if processes > 1:
        argv += ["-multi", str(processes)]
    argv.append("rsa4096")
    shown = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    match = re.search(
        r"^rsa\s+4096 bits\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)", shown.stdout, re.MULTILINE
    )
    return float(match.group(1)) if match else None


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table (Markdown-compatible), so it can be pasted into docs."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
        return str(value)

    def line(values: Sequence[str], aligns: Sequence[Callable[[str, int], str]]) -> str:
        padded = (align(v, w) for v, w, align in zip(values, widths, aligns, strict=True))
        return "| " + " | ".join(padded) + " |"

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    aligns = [str.ljust] + [str.rjust] * (len(headers) - 1)  # labels left, figures right
    lines = [
        line(headers, [str.ljust] * len(headers)),
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [line(row, aligns) for row in cells]
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load average {load}"


# -- processes seen through /proc (bench_flow.py): CPU, memory, process trees ---------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3, the state, first)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, plus that of its children it has already waited for
    (utime, stime, cutime, cstime); 0 if it is gone. Summed over a process tree, this total
    only grows, even when a child exits and is reaped during the measurement."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


def proc_rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of a process; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def proc_cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def proc_tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now (from each process's parent pid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """CPU of a whole process tree (see `proc_cpu_seconds`)."""
    return sum(proc_cpu_seconds(pid) for pid in proc_tree(root))


def percentile(values: Sequence[float], pct: float) -> float:
    """The pct-th percentile (inclusive method, as `Rate.percentile_ms`); NaN if empty."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]
