"""The pure logic of the person's rights requests: the one-month deadline of GDPR Art. 12(3),
the opaque references, the partner's pseudonym of the person, and the checks on what a request
may carry (names of data, never values; a recipient only for portability)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sharelock.rights import RightsError, one_month_after, subject_ref
from sharelock.rights.desk import check_fields, check_recipient, subject_key
from sharelock.rights.requests import new_reference, valid_reference
from sharelock.rights.service import Subject


@pytest.mark.parametrize(
    ("created", "deadline"),
    [
        (datetime(2026, 3, 14, 9, 30, tzinfo=UTC), datetime(2026, 4, 14, 9, 30, tzinfo=UTC)),
        (datetime(2026, 1, 31, 23, 59, tzinfo=UTC), datetime(2026, 2, 28, 23, 59, tzinfo=UTC)),
        (datetime(2028, 1, 31, 8, 0, tzinfo=UTC), datetime(2028, 2, 29, 8, 0, tzinfo=UTC)),
        (datetime(2026, 12, 15, 0, 0, tzinfo=UTC), datetime(2027, 1, 15, 0, 0, tzinfo=UTC)),
        (datetime(2026, 8, 31, 12, 0, tzinfo=UTC), datetime(2026, 9, 30, 12, 0, tzinfo=UTC)),
    ],
)
def test_the_deadline_is_one_calendar_month_later(created: datetime, deadline: datetime) -> None:
    assert one_month_after(created) == deadline


def test_references_are_opaque_readable_and_checked() -> None:
    drawn = {new_reference() for _ in range(2000)}
    assert len(drawn) == 2000
    for reference in drawn:
        assert valid_reference(reference)
        assert not set(reference) & set("IL01OU")
    for bad in ("", "R-1234", "R-AAAA-BBBB-CCCC ", "r-aaaa-bbbb-cccc", "R-AAAA-BBBB-CCCC/../x"):
        assert not valid_reference(bad)


def test_each_partner_sees_its_own_pseudonym_of_the_person() -> None:
    key = "hmac-sha256:" + "a" * 64
    a, b = subject_ref("sl_a", key), subject_ref("sl_b", key)
    assert a != b and a == subject_ref("sl_a", key)
    assert key not in a and a.startswith("sub_") and len(a) == 36


def test_the_subject_key_is_the_login_hash_or_the_receipts_flow() -> None:
    proof = Subject("proof", "sandbox-bank", "hmac-sha256:" + "b" * 64)
    assert subject_key(proof) == "hmac-sha256:" + "b" * 64


def test_fields_are_names_of_data_never_values() -> None:
    assert check_fields(["identity", "identity.birthdate", "identity"]) == [
        "identity",
        "identity.birthdate",
    ]
    for bad in (["Martin"], ["identity.Martin"], ["1985-03-14"], ["identity.birthdate.x"]):
        with pytest.raises(RightsError) as raised:
            check_fields(bad)
        assert bad[0] not in str(raised.value)


def test_a_recipient_only_for_portability_and_on_one_line() -> None:
    assert check_recipient("portability", "  Other Bank SA  ") == "Other Bank SA"
    assert check_recipient("erasure", None) is None
    for kind, value in (
        ("portability", None),
        ("portability", "   "),
        ("portability", "a\nb"),
        ("portability", "x" * 201),
        ("erasure", "Other Bank SA"),
    ):
        with pytest.raises(RightsError) as raised:
            check_recipient(kind, value)
        assert "Other Bank" not in str(raised.value) and "a\nb" not in str(raised.value)
