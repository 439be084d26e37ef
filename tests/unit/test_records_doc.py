"""The record of processing (GDPR Art. 30) is generated from the configuration, and
`docs/privacy.md` is exactly that record for the default configuration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sharelock.config import Retention
from sharelock.db import ROLES
from sharelock.records import ROLE_TEXT, broker_record, duration_text, to_json, to_markdown
from sharelock.scopes import SCOPE_FIELDS

DOC = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"
REGENERATE = "sharelock records --markdown --no-partners > docs/privacy.md"


def test_docs_privacy_is_the_generated_record() -> None:
    expected = to_markdown(broker_record(), [], Retention())
    assert DOC.read_text(encoding="utf-8") == expected, f"stale docs/privacy.md: run {REGENERATE}"


def test_every_retention_limit_belongs_to_an_activity() -> None:
    named = {name for activity in broker_record() for name in activity.retention}
    assert named == set(Retention.model_fields)


def test_every_data_category_and_field_is_recorded() -> None:
    markdown = to_markdown(broker_record(), [], Retention())
    for scope, fields in SCOPE_FIELDS.items():
        assert f"{scope} ({', '.join(fields)})" in markdown


def test_the_record_follows_the_configured_limits() -> None:
    default = to_markdown(broker_record(), [], Retention())
    # The account's default (13 months) is the audit trace's: both shortened.
    shorter_limits = Retention(audit_trace=timedelta(days=30), account=timedelta(days=30))
    shorter = to_markdown(broker_record(), [], shorter_limits)
    assert "| 396 days |" in default and "| 30 days |" not in default
    assert "| 30 days |" in shorter and "| 396 days |" not in shorter
    seconds = to_json(broker_record(), [], Retention(identity_data=timedelta(hours=24)))
    assert seconds["retention_seconds"]["identity_data"] == 86400


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=60), "1 minute"),
        (timedelta(seconds=90), "90 seconds"),
        (timedelta(minutes=5), "5 minutes"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=72), "72 hours"),
        (timedelta(days=120), "120 days"),
        (timedelta(days=396), "396 days"),
        (timedelta(seconds=1), "1 second"),
    ],
)
def test_durations_are_exact(value: timedelta, text: str) -> None:
    assert duration_text(value) == text


def test_every_partner_role_has_a_text() -> None:
    assert set(ROLE_TEXT) == set(ROLES)
