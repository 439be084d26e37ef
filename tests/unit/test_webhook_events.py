"""Which audit rows give which webhook events, what a SET says, and the retry back-off: pure
logic (the queue, the pushes and the signature are in tests/integration/test_webhooks.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from sharelock.webhooks import (
    CONSENT_WITHDRAWN,
    ERASURE_REQUESTED,
    EVENT_URI_PREFIX,
    RIGHTS_REQUEST,
    SHARE_DELIVERED,
    SHARE_EXPIRED,
    SHARE_REFUSED,
    Backoff,
    Event,
    jti_of,
    set_claims,
)
from sharelock.webhooks.backoff import MIN_DELAY_S
from sharelock.webhooks.events import AuditFacts, event_of

AT = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)
REF = "f" * 32
KEY = "a" * 64
HASH = "b" * 64


def facts(event: str, **columns: str | None) -> AuditFacts:
    return AuditFacts(
        id=41, at=AT, event=event, client_id="sl_partner", row_hash=HASH, flow_ref=REF, **columns
    )


@pytest.mark.parametrize(
    ("audit_event", "columns", "expected", "detail"),
    [
        ("data_delivered", {"delivery_key": KEY}, SHARE_DELIVERED, {"delivery_key": KEY}),
        ("data_expired", {}, SHARE_EXPIRED, {}),
        ("flow_abandoned", {}, SHARE_EXPIRED, {}),
        ("consent_refused", {}, SHARE_REFUSED, {}),
        (
            "rights_request",
            {"detail_code": "withdrawal", "query": "reference=R-7K3M-9Q2X-TBHN"},
            CONSENT_WITHDRAWN,
            {"right": "withdrawal", "reference": "R-7K3M-9Q2X-TBHN"},
        ),
        (
            "rights_request",
            {"detail_code": "erasure", "query": "reference=R-AAAA-BBBB-CCCC"},
            ERASURE_REQUESTED,
            {"right": "erasure", "reference": "R-AAAA-BBBB-CCCC"},
        ),
        (
            "rights_request",
            {"detail_code": "rectification", "query": "reference=R-AAAA-BBBB-CCCC"},
            RIGHTS_REQUEST,
            {"right": "rectification", "reference": "R-AAAA-BBBB-CCCC"},
        ),
    ],
)
def test_each_relayed_audit_event_gives_its_webhook_event(
    audit_event: str, columns: dict[str, str], expected: str, detail: dict[str, str]
) -> None:
    event = event_of(facts(audit_event, **columns), queued_at=100.0)
    assert event is not None
    assert (event.type, event.detail, event.flow_ref) == (expected, detail, REF)
    assert event.occurred_at == "2026-12-01T09:30:15Z"
    assert (event.id, event.client_id, event.queued_at, event.attempts) == (
        41,
        "sl_partner",
        100,
        0,
    )


@pytest.mark.parametrize(
    "audit_event", ["flow_started", "collection_succeeded", "consent_given", "security_alert"]
)
def test_other_audit_events_give_none(audit_event: str) -> None:
    assert event_of(facts(audit_event), queued_at=0.0) is None


def test_the_jti_is_the_same_for_the_same_row_and_differs_otherwise() -> None:
    first = event_of(facts("data_expired"), queued_at=1.0)
    again = event_of(facts("data_expired"), queued_at=999.0)
    assert first is not None and again is not None
    assert first.jti == again.jti == jti_of(41, HASH)
    assert len(first.jti) == 32
    assert jti_of(42, HASH) != first.jti
    assert jti_of(41, "c" * 64) != first.jti


def test_a_set_names_one_event_and_nothing_else() -> None:
    event = event_of(facts("data_delivered", delivery_key=KEY), queued_at=1.0)
    assert event is not None
    claims = set_claims(event, "https://broker.example", 1_764_581_415.7)
    assert claims == {
        "iss": "https://broker.example",
        "iat": 1_764_581_415,
        "jti": event.jti,
        "aud": "sl_partner",
        "txn": REF,
        "events": {
            EVENT_URI_PREFIX + SHARE_DELIVERED: {
                "occurred_at": "2026-12-01T09:30:15Z",
                "flow_ref": REF,
                "delivery_key": KEY,
            }
        },
    }


def test_a_queued_event_reads_back_as_written_and_refuses_garbage() -> None:
    event = event_of(facts("consent_refused"), queued_at=5.5)
    assert event is not None
    tried = event.attempted(7.0, "http_503")
    assert Event.from_json(tried.to_json()) == tried
    assert (tried.attempts, tried.last_error, tried.last_attempt_at) == (1, "http_503", 7.0)
    for garbage in (b"", b"[]", b'{"id": 1}', b"\xff"):
        with pytest.raises(ValueError):
            Event.from_json(garbage)


def test_backoff_is_full_jitter_under_a_doubling_ceiling_until_the_horizon() -> None:
    backoff = Backoff(horizon_s=86_400, rng=random.Random(7))
    assert [backoff.ceiling(n) for n in (1, 2, 3, 9, 10, 40)] == [
        10,
        20,
        40,
        2560,
        3600,
        3600,
    ]
    draws = random.Random(7)
    now = 1000.0
    for attempts in range(1, 30):
        expected = now + max(MIN_DELAY_S, draws.uniform(0.0, backoff.ceiling(attempts)))
        assert backoff.next_attempt(attempts, queued_at=0.0, now=now) == expected
    # The last attempt is at the horizon itself, and nothing after it.
    assert backoff.next_attempt(30, queued_at=0.0, now=86_399.0) == 86_400.0
    assert backoff.next_attempt(31, queued_at=0.0, now=86_400.0) is None


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(horizon_s=0)
    with pytest.raises(ValueError):
        Backoff(horizon_s=10, base_s=20, cap_s=10)


def test_webhook_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from sharelock.config import load_settings
    from sharelock.errors import ConfigError

    monkeypatch.setenv("SHARELOCK_WEBHOOK_RETRY_HORIZON", "PT6H")
    monkeypatch.setenv("SHARELOCK_WEBHOOK_TIMEOUT", "2.5")
    monkeypatch.setenv("SHARELOCK_WEBHOOK_ENABLED", "false")
    settings = load_settings()
    assert settings.webhook_retry_horizon == timedelta(hours=6)
    assert (settings.webhook_timeout, settings.webhook_enabled) == (2.5, False)
    monkeypatch.setenv("SHARELOCK_WEBHOOK_RETRY_HORIZON", "PT0S")
    with pytest.raises(ConfigError, match="SHARELOCK_WEBHOOK_RETRY_HORIZON"):
        load_settings()
