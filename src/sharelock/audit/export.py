"""Exports of audit rows for auditors: CSV (RFC 4180, a header line) or JSON lines.

Every column is exported as stored, `prev_hash` and `row_hash` included, so an auditor can
recompute the chain from an export (`sharelock.audit.chain.row_hash`). Values are never
rewritten: the columns hold only codes, ids, digests and times.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Literal

from sharelock.audit.records import COLUMNS, AuditRecord

ExportFormat = Literal["csv", "jsonl"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl")
MEDIA_TYPES: dict[ExportFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
}


def csv_lines(records: Iterable[AuditRecord]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(values: Iterable[object]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(COLUMNS)
    for record in records:
        row = record.to_json()
        yield line("" if row[name] is None else row[name] for name in COLUMNS)


def jsonl_lines(records: Iterable[AuditRecord]) -> Iterator[str]:
    for record in records:
        yield json.dumps(record.to_json(), separators=(",", ":")) + "\n"


def export_lines(records: Iterable[AuditRecord], fmt: ExportFormat) -> Iterator[str]:
    if fmt == "csv":
        return csv_lines(records)
    if fmt == "jsonl":
        return jsonl_lines(records)
    raise ValueError(f"format: one of {', '.join(FORMATS)}")
