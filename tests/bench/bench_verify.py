"""`verify` speed: audit rows checked per second on a trail of one million rows.

    python tests/bench/bench_verify.py [--rows 1000000] [--postgres URL]

The trail is written in bulk with the chain's own hash function (writing it through
`AuditTrail.record`, one transaction per row, would take far longer than verifying it), then
`verify_chain` walks it exactly as `sharelock audit verify` does. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sqlalchemy import insert, update  # noqa: E402

from sharelock.audit import verify_chain  # noqa: E402
from sharelock.audit.chain import row_hash  # noqa: E402
from sharelock.db import create_engine_for, migrate  # noqa: E402
from sharelock.db.models import GENESIS_HASH, AuditChainHead, AuditEventRow  # noqa: E402

BATCH = 20_000
EVENTS = ("flow_started", "credentials_received", "collection_succeeded", "consent_given")


def fill(url: str, rows: int) -> float:
    engine = create_engine_for(url)
    migrate(engine)
    started = time.perf_counter()
    prev = GENESIS_HASH
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        batch: list[dict[str, object]] = []
        for index in range(1, rows + 1):
            columns = {
                "at": at + timedelta(milliseconds=index),
                "event": EVENTS[index % len(EVENTS)],
                "client_id": f"sl_bench{index % 50}",
                "data_source": "sandbox-bank",
                "login_hash": "hmac-sha256:" + f"{index:064x}",
                "flow_ref": f"{index // 4:032x}",
                "browser_family": "firefox",
                "device_type": "desktop",
                "outcome": "ok",
                "detail_code": None,
                "delivery_key": None,
            }
            digest = row_hash(columns, prev)
            batch.append({"id": index, "prev_hash": prev, "row_hash": digest, **columns})
            prev = digest
            if len(batch) == BATCH:
                connection.execute(insert(AuditEventRow), batch)
                batch.clear()
        if batch:
            connection.execute(insert(AuditEventRow), batch)
        connection.execute(update(AuditChainHead).values(last_id=rows, last_hash=prev))
    engine.dispose()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL to use instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sharelock-verify-") as tmp:
        url = args.postgres or f"sqlite:///{Path(tmp) / 'trail.db'}"
        seconds_fill = fill(url, args.rows)
        engine = create_engine_for(url)
        started = time.perf_counter()
        report = verify_chain(engine)
        seconds = time.perf_counter() - started
        engine.dispose()
    assert report.ok, report
    backend = "postgresql" if args.postgres else "sqlite"
    print(f"backend        {backend}")
    print(f"rows           {report.rows_checked:,}")
    print(f"written in     {seconds_fill:.1f} s (bulk, outside the benchmark)")
    print(f"verified in    {seconds:.1f} s")
    print(f"rows/s         {report.rows_checked / seconds:,.0f}")


if __name__ == "__main__":
    main()
