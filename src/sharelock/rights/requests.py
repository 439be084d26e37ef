"""Rights requests only a partner can act on, in the database (`rights_requests`).

A person asks, on `/rights`, for a right that only the partner that received their data can
honour: rectification, objection, restriction, erasure of what it received, withdrawal of
consent for what it received, or forwarding their data to another controller (portability).
The broker records the request under an opaque reference shown to the person, with the
deadline of GDPR Art. 12(3) (one month), and makes it available to the partner (an
authenticated endpoint) and to the operator (`sharelock rights list`).

What the table holds is pseudonymous: the person is `subject_key` (the login's keyed hash, as
in the audit trail; or `flow:<flow_ref>` for a receipt without one). A partner is never shown
that key: it gets `subject_ref`, a digest of the key bound to its own client id (so two
partners cannot match their people through the broker), and the shares it received
(`delivery_key`: the SHA-256, in hex, of the access token it used; and when).
"""

from __future__ import annotations

import calendar
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sharelock.db import (
    RIGHTS_REQUEST_KINDS,
    RIGHTS_REQUEST_STATUSES,
    RightsRequestRow,
    database_errors,
)
from sharelock.rights.errors import RightsUnavailable

KINDS = RIGHTS_REQUEST_KINDS
STATUSES = RIGHTS_REQUEST_STATUSES
ANSWERS = ("done", "refused")
# Letters and digits nobody misreads (no I, L, O, U, 0, 1): read over the phone, typed back.
_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
REFERENCE = re.compile(r"R-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}")
MAX_LISTED = 500


def new_reference() -> str:
    """An opaque reference, e.g. `R-7K3M-9Q2X-TBHN` (30^12 values: unguessable, unique)."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"R-{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def valid_reference(value: str) -> bool:
    return isinstance(value, str) and REFERENCE.fullmatch(value) is not None


def one_month_after(moment: datetime) -> datetime:
    """The same day and time a month later (GDPR Art. 12(3), "within one month"); the last
    day of the next month when it has no such day (31 January → 28 or 29 February)."""
    year = moment.year + (moment.month // 12)
    month = moment.month % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def subject_ref(client_id: str, subject_key: str) -> str:
    """What a partner sees of the person: stable for that partner, meaningless elsewhere."""
    message = f"sharelock-rights-subject|{client_id}|{subject_key}".encode()
    return "sub_" + hashlib.sha256(message).hexdigest()[:32]


def _time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RightsRequest:
    """One request as read back, detached from the database."""

    reference: str
    client_id: str
    kind: str
    subject_key: str
    data_source: str | None
    fields: tuple[str, ...]
    recipient: str | None
    created_at: datetime
    deadline: datetime
    status: str
    answered_at: datetime | None

    def __repr__(self) -> str:
        # The subject key is pseudonymous, but it has no business in a log line.
        return f"RightsRequest({self.reference}, {self.client_id}, {self.kind}, {self.status})"

    @classmethod
    def from_row(cls, row: RightsRequestRow) -> RightsRequest:
        return cls(
            reference=row.reference,
            client_id=row.client_id,
            kind=row.kind,
            subject_key=row.subject_key,
            data_source=row.data_source,
            fields=tuple(row.fields or ()),
            recipient=row.recipient,
            created_at=row.created_at,
            deadline=row.deadline,
            status=row.status,
            answered_at=row.answered_at,
        )

    def overdue(self, now: datetime) -> bool:
        return self.status == "open" and self.deadline < now

    def for_person(self) -> dict[str, Any]:
        """What the person sees: never the subject key."""
        return {
            "reference": self.reference,
            "client_id": self.client_id,
            "kind": self.kind,
            "fields": list(self.fields),
            "recipient": self.recipient,
            "created_at": _time(self.created_at),
            "deadline": _time(self.deadline),
            "status": self.status,
            "answered_at": _time(self.answered_at),
        }

    def for_partner(self, shares: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        """What the partner sees: its own pseudonym of the person, and the shares concerned."""
        view = self.for_person()
        del view["client_id"]
        return {
            **view,
            "subject_ref": subject_ref(self.client_id, self.subject_key),
            "data_source": self.data_source,
            "shares": list(shares),
        }


def create(
    engine: Engine,
    *,
    client_id: str,
    kind: str,
    subject_key: str,
    data_source: str | None,
    fields: Sequence[str] = (),
    recipient: str | None = None,
    now: datetime | None = None,
    reference: str | None = None,
) -> RightsRequest:
    """Store a new open request under `reference` (or a fresh one, as on a collision)."""
    if kind not in KINDS:
        raise ValueError("unknown kind of right")
    created = (now or datetime.now(UTC)).replace(microsecond=0)
    for attempt in range(3):  # a reference collision is astronomically rare; retry anyway
        row = RightsRequestRow(
            reference=reference if reference and attempt == 0 else new_reference(),
            client_id=client_id,
            kind=kind,
            subject_key=subject_key,
            data_source=data_source,
            fields=list(fields),
            recipient=recipient,
            created_at=created,
            deadline=one_month_after(created),
            status="open",
            answered_at=None,
        )
        with database_errors(RightsUnavailable, "cannot store the rights request"):
            try:
                with Session(engine, expire_on_commit=False) as session, session.begin():
                    session.add(row)
            except IntegrityError:
                continue  # the reference was taken: draw another
        return RightsRequest.from_row(row)
    raise RightsUnavailable("could not allocate a rights request reference")


def _read(query: Select[RightsRequestRow], engine: Engine) -> list[RightsRequest]:
    with (
        database_errors(RightsUnavailable, "cannot read the rights requests"),
        Session(engine) as session,
    ):
        return [RightsRequest.from_row(row) for row in session.scalars(query.limit(MAX_LISTED))]


def of_subject(engine: Engine, subject_keys: Sequence[str]) -> list[RightsRequest]:
    """The person's requests, newest first."""
    if not subject_keys:
        return []
    row = RightsRequestRow
    query = select(row).where(row.subject_key.in_(sorted(set(subject_keys))))
    return _read(query.order_by(row.id.desc()), engine)


def listed(
    engine: Engine,
    *,
    client_id: str | None = None,
    status: str | None = None,
    overdue_at: datetime | None = None,
) -> list[RightsRequest]:
    """Requests, oldest deadline first: a partner's (`client_id`), by `status`, or those
    still open past their deadline at `overdue_at`."""
    row = RightsRequestRow
    query = select(row)
    if client_id is not None:
        query = query.where(row.client_id == client_id)
    if status is not None:
        query = query.where(row.status == status)
    if overdue_at is not None:
        query = query.where(row.status == "open", row.deadline < overdue_at)
    return _read(query.order_by(row.deadline, row.id), engine)


def get(engine: Engine, reference: str) -> RightsRequest | None:
    """The request with this reference; None for an unknown or malformed one."""
    if not valid_reference(reference):
        return None
    found = _read(select(RightsRequestRow).where(RightsRequestRow.reference == reference), engine)
    return found[0] if found else None


def answer(engine: Engine, reference: str, outcome: str, now: datetime | None = None) -> bool:
    """Mark an open request answered (`done` or `refused`); False if it was not open."""
    if outcome not in ANSWERS:
        raise ValueError("unknown answer")
    row = RightsRequestRow
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    with (
        database_errors(RightsUnavailable, "cannot store the answer"),
        engine.begin() as connection,
    ):
        changed = connection.execute(
            update(row)
            .where(row.reference == reference, row.status == "open")
            .values(status=outcome, answered_at=moment)
        ).rowcount
    return bool(changed)
