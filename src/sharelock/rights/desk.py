"""Every right of the person in one place (seed 003, chapter 10), beside access, export and
erasure (`RightsService`): who answers for the data (the broker, each partner and its GDPR
role, their data-protection contacts), and the rights only a partner can fully honour.

For a right asked about one partner (`RightsDesk.ask`), the order is fixed:

1. the request's audit row (`rights_request`, actor `person`, `detail_code` the right,
   `query` the reference) is committed first: if it cannot be written, nothing is done (503);
2. what the broker can do itself it does at once:
   - withdrawal of consent: the approved share not yet delivered to that partner is cancelled
     (its release erased in Redis: the partner's code or token then gets nothing), and what
     the broker keeps on the strength of that share goes (the identity copy kept for the
     partner's identity verification, credentials kept for maintenance);
   - erasure, restriction, objection: the broker stops what it keeps of that share (the
     identity copy, maintenance credentials);
   - rectification and portability: the broker holds nothing to correct, and its export is
     the download offered on the page;
3. when the partner received data, the request is recorded for it (`rights_requests`, a
   reference and the one-month deadline of Art. 12(3)) and the partner lists and answers it
   through its authenticated endpoint.

The audit trace itself stays (the legal obligation to prove what was shared, Art. 17(3)(b)):
`RightsService` says why and until when.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from sharelock.audit import AuditUnavailable, EventType
from sharelock.blocking import run_blocking
from sharelock.config import Settings
from sharelock.db import AuditEventRow, database_errors
from sharelock.flow import IDENTITY, RELEASE, AsyncAudit, AsyncPartners, Records
from sharelock.maintenance import delete_for_login_hash
from sharelock.rights import requests
from sharelock.rights.errors import AlreadyAnswered, RequestNotFound, RightsError, UnknownRecipient
from sharelock.rights.service import FLOW_MARGIN, Subject, person_rows
from sharelock.scopes import SCOPE_FIELDS

MAX_FIELDS = 24
MAX_RECIPIENT_LENGTH = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What the broker does at once for each right (besides forwarding it).
STOPS_KEPT_COPIES = frozenset({"withdrawal", "erasure", "restriction", "objection"})
DELIVERED = EventType.DATA_DELIVERED.value


def subject_key(subject: Subject) -> str:
    """The person in the requests table: the login's keyed hash, else the receipt's flow."""
    if subject.login_hash is not None:
        return subject.login_hash
    assert subject.receipt is not None
    return f"flow:{subject.receipt.flow_ref}"


def check_fields(values: Iterable[str]) -> list[str]:
    """Data categories (`identity`) or fields (`identity.birthdate`): names, never values."""
    found: list[str] = []
    for value in values:
        scope, _, name = value.partition(".")
        if scope not in SCOPE_FIELDS or (name and name not in SCOPE_FIELDS[scope]):
            raise RightsError("fields: data categories or fields the broker shares")
        if value not in found:
            found.append(value)
    if len(found) > MAX_FIELDS:
        raise RightsError("fields: too many")
    return found


def check_recipient(kind: str, recipient: str | None) -> str | None:
    """The other controller of a portability request (an organisation and how to reach it),
    one line; refused for the other rights."""
    if kind != "portability":
        if recipient:
            raise RightsError("recipient: only for portability")
        return None
    value = (recipient or "").strip()
    if not value or len(value) > MAX_RECIPIENT_LENGTH or _CONTROL.search(value):
        raise RightsError(
            f"recipient: the organisation to forward the data to, one line of at most "
            f"{MAX_RECIPIENT_LENGTH} characters"
        )
    return value


class RightsDesk:
    def __init__(
        self,
        settings: Settings,
        records: Records,
        engine: Engine,
        audit: AsyncAudit,
        partners: AsyncPartners,
    ) -> None:
        self.settings = settings
        self.records = records
        self.engine = engine
        self.audit = audit
        self.partners = partners

    # -- what the person sees -----------------------------------------------------------

    async def overview(self, subject: Subject, traces: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Who answers for the data (the broker; each partner of the traces with its role and
        data-protection contact) and the person's requests with their deadlines."""
        received = {
            trace["partner"]["client_id"]
            for trace in traces
            if trace["event"] == DELIVERED and trace["partner"]
        }
        seen = sorted({trace["partner"]["client_id"] for trace in traces if trace["partner"]})
        mine = await run_blocking(requests.of_subject, self.engine, [subject_key(subject)])
        for request in mine:
            if request.client_id not in seen:
                seen.append(request.client_id)
        partners = []
        for client_id in seen:
            partner = await self.partners.get(client_id)
            partners.append(
                {
                    "client_id": client_id,
                    "name": partner.name if partner else client_id,
                    "role": partner.role if partner else None,
                    "dpo_contact": partner.dpo_contact if partner else None,
                    "home_url": partner.home_url if partner else None,
                    "received": client_id in received,
                }
            )
        return {
            "controller": {
                "name": self.settings.controller_name,
                "dpo_contact": self.settings.dpo_contact,
            },
            "partners": partners,
            "requests": [request.for_person() for request in mine],
        }

    # -- a right about one partner ------------------------------------------------------

    async def ask(
        self,
        subject: Subject,
        client_id: str,
        kind: str,
        fields: Sequence[str] = (),
        recipient: str | None = None,
    ) -> dict[str, Any]:
        """Act on `kind` for the person's shares with `client_id` (see the module's text)."""
        if kind not in requests.KINDS:
            raise RightsError("kind: one of " + ", ".join(requests.KINDS))
        names = check_fields(fields) if kind == "rectification" else []
        if fields and kind != "rectification":
            raise RightsError("fields: only for rectification")
        recipient = check_recipient(kind, recipient)
        rows, _ = await run_blocking(
            person_rows,
            self.engine,
            subject.login_hash,
            subject.receipt.flow_ref if subject.receipt else None,
            self.settings.retention.session + FLOW_MARGIN,
        )
        mine = [row for row in rows if row.client_id == client_id]
        if not mine:
            raise UnknownRecipient("no share with this online service under this proof")
        partner = await self.partners.get(client_id)
        refs = sorted({row.flow_ref for row in mine if row.flow_ref})
        reference = requests.new_reference()
        fields_of_row = {**subject.audit_fields(), "client_id": client_id}
        # 1. The row first: without it, nothing happens.
        await self.audit.record(
            EventType.RIGHTS_REQUEST,
            detail_code=kind,
            query=f"reference={reference}",
            **fields_of_row,
        )
        # 2. What the broker does at once.
        done: dict[str, Any] = {}
        if kind == "withdrawal":
            done["pending_shares_cancelled"] = await self._cancel_pending(refs)
        if kind in STOPS_KEPT_COPIES:
            done["identity_data_erased"] = (
                await self.records.delete(IDENTITY, *refs) > 0 if refs else False
            )
            done["maintenance_credentials_erased"] = (
                await run_blocking(
                    delete_for_login_hash, self.engine, subject.login_hash, client_id
                )
                if subject.login_hash is not None
                else 0
            )
        # 3. Forwarded when the partner holds something: it received data (a share being
        # delivered while the withdrawal ran counts: the database says what left).
        delivered = any(row.event == DELIVERED for row in mine) or (
            bool(refs) and await run_blocking(_delivered, self.engine, client_id, refs)
        )
        forwarded = None
        if delivered:
            created = await run_blocking(
                lambda: requests.create(
                    self.engine,
                    reference=reference,
                    client_id=client_id,
                    kind=kind,
                    subject_key=subject_key(subject),
                    data_source=subject.data_source,
                    fields=names,
                    recipient=recipient,
                )
            )
            forwarded = created.for_person()
        return {
            "kind": kind,
            "partner": {
                "client_id": client_id,
                "name": partner.name if partner else client_id,
                "role": partner.role if partner else None,
                "dpo_contact": partner.dpo_contact if partner else None,
            },
            "done": done,
            "received": delivered,
            "forwarded": forwarded,
        }

    async def _cancel_pending(self, refs: Sequence[str]) -> int:
        """Erase the approved data still waiting for the partner, of the flows `refs` (a
        release is keyed by its flow reference, what the audit trail holds). The partner's
        code or token then finds nothing to deliver (`invalid_grant`)."""
        return await self.records.delete(RELEASE, *dict.fromkeys(refs))

    # -- the partner's side -------------------------------------------------------------

    async def for_partner(self, client_id: str, status: str | None = "open") -> dict[str, Any]:
        """The partner's requests (open ones by default), each with the shares concerned."""
        if status is not None and status not in requests.STATUSES:
            raise RightsError("status: one of " + ", ".join(requests.STATUSES))
        found = await run_blocking(
            lambda: requests.listed(self.engine, client_id=client_id, status=status)
        )
        listed = []
        for request in found:
            shares = await run_blocking(_shares, self.engine, client_id, request.subject_key)
            listed.append(request.for_partner(shares))
        return {"requests": listed}

    async def answer(self, client_id: str, reference: str, outcome: str) -> dict[str, Any]:
        """The partner says it honoured (`done`) or refused (`refused`) a request; audited
        first, final."""
        if outcome not in requests.ANSWERS:
            raise RightsError("outcome: done or refused")
        request = await run_blocking(requests.get, self.engine, reference)
        if request is None or request.client_id != client_id:
            raise RequestNotFound("no rights request of yours under this reference")
        if request.status != "open":
            raise AlreadyAnswered("this request was answered already")
        await self.audit.record(
            EventType.RIGHTS_ANSWERED,
            actor=f"partner:{client_id}",
            client_id=client_id,
            data_source=request.data_source,
            outcome=outcome,
            detail_code=request.kind,
            query=f"reference={reference}",
        )
        if not await run_blocking(requests.answer, self.engine, reference, outcome):
            raise AlreadyAnswered("this request was answered already")
        return {"reference": reference, "status": outcome}


def _delivered(engine: Engine, client_id: str, refs: Sequence[str]) -> bool:
    row = AuditEventRow
    query = select(row.id).where(
        row.event == DELIVERED, row.client_id == client_id, row.flow_ref.in_(list(refs))
    )
    with (
        database_errors(AuditUnavailable, "audit trail unavailable"),
        engine.connect() as connection,
    ):
        return connection.execute(query.limit(1)).first() is not None


def _shares(engine: Engine, client_id: str, key: str) -> list[dict[str, Any]]:
    """The deliveries to `client_id` of the person `key`: when, and the delivery key (the
    SHA-256, in hex, of the access token the partner used), which the partner can match."""
    row = AuditEventRow
    match = row.flow_ref == key[5:] if key.startswith("flow:") else row.login_hash == key
    query = (
        select(row.at, row.delivery_key)
        .where(row.event == DELIVERED, row.client_id == client_id, match)
        .order_by(row.id)
        .limit(100)
    )
    with (
        database_errors(AuditUnavailable, "audit trail unavailable"),
        engine.connect() as connection,
    ):
        found = connection.execute(query).all()
    return [
        {
            "delivered_at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "delivery_key": delivery_key,
        }
        for at, delivery_key in found
    ]


def overdue(engine: Engine, now: datetime | None = None) -> list[requests.RightsRequest]:
    """Open requests past their deadline (for the operator)."""
    return requests.listed(engine, overdue_at=now or datetime.now(UTC))
