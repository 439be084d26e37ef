"""The record of processing activities (GDPR Art. 30), generated from the configuration.

Public surface: `broker_record` / `partner_record` (what the broker and each registered partner
process), `Activity`, and `to_markdown` / `to_json`. `docs/privacy.md` is
`sharelock records --markdown --no-partners`; a test keeps the two equal.
"""

from sharelock.records.activities import (
    ROLE_TEXT,
    Activity,
    Category,
    broker_record,
    partner_record,
)
from sharelock.records.render import duration_text, to_json, to_markdown

__all__ = [
    "ROLE_TEXT",
    "Activity",
    "Category",
    "broker_record",
    "duration_text",
    "partner_record",
    "to_json",
    "to_markdown",
]
