"""What the cluster run asserts once the load has stopped: from the audit trail in PostgreSQL,
from every Redis process, and from every log, against what the load generator saw."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

from sharelock.flow.state import flow_ref
from tests.cluster.load import ShareResult
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_ha import RedisHA
from tests.support.whole_share import CREDENTIALS, FAMILY_NAME, IBAN

# Every way a flow ends (docs/auditor-guide.md): one of these per flow, exactly.
TERMINAL = ("data_delivered", "consent_refused", "data_expired", "flow_abandoned")
# Handles (flow ids, codes, tokens) are URL-safe random strings of these lengths.
_HANDLE = re.compile(rb"[A-Za-z0-9_-]{22,64}")


@dataclass
class Findings:
    """Everything the checks found; `problems` empty means the run passed."""

    problems: list[str] = field(default_factory=list)
    double_deliveries: int = 0
    releases_without_row: int = 0
    rows_without_release: int = 0
    interrupted_deliveries: int = 0  # the row committed, its node killed before answering
    flows: int = 0
    flows_without_end: int = 0
    flows_with_two_ends: int = 0

    def fail(self, message: str) -> None:
        self.problems.append(message)


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def ends_per_flow(url: str) -> tuple[set[str], Counter[str]]:
    """Every started flow's reference, and how many terminal rows each has."""
    started = {str(r[0]) for r in _rows(url, _STARTED)}
    ends: Counter[str] = Counter()
    for ref, count in _rows(url, _ENDS):
        ends[str(ref)] = int(str(count))
    return started, ends


_STARTED = "SELECT DISTINCT flow_ref FROM audit_events WHERE event = 'flow_started'"
_ENDS = (
    "SELECT flow_ref, COUNT(*) FROM audit_events WHERE event IN ("
    + ", ".join(f"'{event}'" for event in TERMINAL)
    + ") GROUP BY flow_ref"
)


def wait_for_every_end(url: str, timeout: float) -> float:
    """Poll until every started flow has a terminal row (abandoned ones get theirs when the
    session cap passes and a sweep runs); returns the seconds waited."""
    began = time.monotonic()
    while True:
        started, ends = ends_per_flow(url)
        if all(ends[ref] >= 1 for ref in started):
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            return time.monotonic() - began
        time.sleep(1.0)


def check_trail(url: str, results: Sequence[ShareResult], findings: Findings) -> None:
    delivered = Counter(
        str(r[0])
        for r in _rows(url, "SELECT flow_ref FROM audit_events WHERE event = 'data_delivered'")
    )
    findings.double_deliveries = sum(1 for count in delivered.values() if count > 1)
    if findings.double_deliveries:
        findings.fail(f"{findings.double_deliveries} flow(s) with two data_delivered rows")
    received = {flow_ref(r.delivered_flow) for r in results if r.delivered_flow is not None}
    findings.releases_without_row = sum(1 for ref in received if delivered[ref] != 1)
    if findings.releases_without_row:
        findings.fail(f"{findings.releases_without_row} delivery(ies) without their row")
    # A row for data the partner never received. One cause is known and documented: a node
    # killed after committing the row and before its answer reached the partner, whose retry
    # is then refused (docs/operations.md, "A node lost"). Such a share ended at `/v1/share`
    # after at least one failed try; it is counted and shown, not failed. Any other is a bug.
    fetch_failed = {
        flow_ref(r.flow_ids[-1])
        for r in results
        if r.flow_ids and r.delivered_flow is None and r.step == "share" and r.retries > 0
    }
    without = [ref for ref in delivered if ref not in received]
    findings.interrupted_deliveries = sum(1 for ref in without if ref in fetch_failed)
    findings.rows_without_release = len(without) - findings.interrupted_deliveries
    if findings.rows_without_release:
        findings.fail(
            f"{findings.rows_without_release} data_delivered row(s) for data the partner "
            "never received"
        )
    started, ends = ends_per_flow(url)
    findings.flows = len(started)
    findings.flows_without_end = sum(1 for ref in started if ends[ref] == 0)
    findings.flows_with_two_ends = sum(1 for ref in started if ends[ref] > 1)
    if findings.flows_without_end:
        findings.fail(f"{findings.flows_without_end} flow(s) without a terminal row")
    if findings.flows_with_two_ends:
        findings.fail(f"{findings.flows_with_two_ends} flow(s) with more than one terminal row")


def check_verify(env: dict[str, str], findings: Findings) -> None:
    sharelock = str(Path(sys.executable).with_name("sharelock"))
    done = subprocess.run(
        [sharelock, "audit", "verify"], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        findings.fail(f"sharelock audit verify failed: {done.stdout[-500:]} {done.stderr[-500:]}")


def planted_values(partner_secret: str) -> list[bytes]:
    """What must never be found in clear: the person's data and secrets."""
    return [
        IBAN.encode(),
        FAMILY_NAME.encode(),
        CREDENTIALS["password"].encode(),
        partner_secret.encode(),
    ]


def check_redis(ha: RedisHA | RedisCluster, planted: Iterable[bytes], findings: Findings) -> int:
    """Every key's serialised value on every Redis node, and any file they wrote; returns
    how many keys were searched."""
    planted = list(planted)
    searched = 0
    for node in ha.nodes:
        if not node.running:
            continue
        with ha.admin(node, timeout=5.0) as client:
            for key in client.scan_iter(count=1000):
                dumped = client.dump(key) or b""
                searched += 1
                blob = bytes(key) + dumped
                for value in planted:
                    if value in blob:
                        findings.fail(f"a planted value in clear in Redis on {node.name}")
                        return searched
    for path in ha.directory.rglob("*"):
        if path.is_file() and (path.suffix in {".rdb", ".aof"} or "appendonly" in path.name):
            data = path.read_bytes()
            if any(value in data for value in planted):
                findings.fail(f"a planted value in clear in {path.name}")
    return searched


def check_logs(
    logs: Iterable[Path], planted: Iterable[bytes], handles: set[bytes], findings: Findings
) -> int:
    """Every log for planted values and for any handle (flow id, token) the run used; returns
    the bytes searched."""
    planted = list(planted)
    size = 0
    for path in logs:
        data = path.read_bytes()
        size += len(data)
        for value in planted:
            if value in data:
                findings.fail(f"a planted value in clear in {path.name}")
        leaked = handles.intersection(_HANDLE.findall(data))
        if leaked:
            findings.fail(f"{len(leaked)} flow id(s) or token(s) in {path.name}")
    return size
