"""`docs/operations.md` states every rate limit as `Settings.limits` enforces it."""

from __future__ import annotations

from pathlib import Path

from sharelock.config import Limits
from sharelock.ratelimit.doc import limits_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_operations_guide_holds_the_generated_limits_table() -> None:
    assert limits_table() in DOC.read_text(encoding="utf-8"), (
        "stale limits table in docs/operations.md: paste sharelock.ratelimit.doc.limits_table()"
    )


def test_the_table_follows_the_configuration() -> None:
    table = limits_table(Limits(per_address="7/second"))
    assert "| `per_address` | `SHARELOCK_LIMITS__PER_ADDRESS` | `7/second` |" in table
    assert all(f"`{name}`" in table for name in Limits.model_fields)
