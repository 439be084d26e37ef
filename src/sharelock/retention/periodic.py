"""Retention as a background task of `serve`: the same job as `sharelock retention run`,
on a timer, so a broker left alone still purges and checkpoints on schedule."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from sharelock.blocking import run_blocking
from sharelock.config import Settings
from sharelock.errors import ServiceUnavailable
from sharelock.keys import KeyLayer
from sharelock.retention.run import run_retention

log = logging.getLogger("sharelock.retention")


async def retention_forever(engine: Engine, keys: KeyLayer, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.retention_interval_seconds)
        try:
            report = await run_blocking(
                run_retention,
                engine,
                keys,
                retention=settings.retention,
                issuer=settings.issuer,
            )
            log.info(
                "retention: %d audit rows, %d maintenance credentials, %d unused accounts purged",
                report.audit_rows_purged,
                report.maintenance_rows_purged,
                report.accounts_purged,
            )
        except ServiceUnavailable:
            log.warning("retention postponed: a backing service is unavailable")
