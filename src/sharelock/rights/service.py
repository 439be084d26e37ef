"""A person's rights without an account: see the traces about them, erase what the broker
still holds, take a copy (GDPR Art. 15, 17, 20; seed 003, "What are your rights").

The person is identified by the consent receipt of a share (`sharelock.audit.receipts`,
verified against the broker's signing key, issuer and audit retention) or by a proof of
control of their data-source account (`sharelock.rights.proofs`: they signed in to the source
again, minutes ago). A login alone identifies nobody and is not accepted (docs/privacy-rights.md
says why). A receipt covers one share; a proof covers every share made with that login.

"Their rows" are the rows carrying their login hash, plus the rows without a login hash of the
same flows (a flow's start, its expiry), never a row with another login hash, and never the
rows that record auditors' questions. Every request writes its own audit row (`rights_*`,
actor `person`) before anything is read or erased; if that row cannot be written, nothing is
(fail closed, `AuditUnavailable` → 503).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, and_, or_, select

from sharelock.audit import (
    AuditRecord,
    AuditUnavailable,
    EventType,
    Receipt,
    select_records,
    verify_receipt,
)
from sharelock.blocking import run_blocking
from sharelock.config import Settings
from sharelock.db import AuditEventRow, database_errors
from sharelock.flow import IDENTITY, AsyncAudit, AsyncPartners, Records
from sharelock.keys import KeyLayer
from sharelock.maintenance import delete_for_login_hash, list_kept

EXPORT_FORMAT = "sharelock-rights-export/1"
MAX_TRACES = 1000
# Rows the person does not see: auditors' questions (which may belong to an inquiry by the
# authorities) and the auditors' own credentials.
HIDDEN_EVENTS = (EventType.AUDITOR_QUERY, EventType.AUDITOR_ADDED, EventType.AUDITOR_REVOKED)
# Rows without a login hash that belong to a flow lie within the session of that flow; a day
# more covers the expiry sweep. Bounding the search by time keeps it on the `at` index.
FLOW_MARGIN = timedelta(days=1)

KEPT_REASON = (
    "The broker keeps a pseudonymised trace of each share for {months} months (then erases it "
    "automatically): it must be able to prove what was shared, with whom and when, to you, to "
    "the online services and to the authorities (GDPR Art. 5(2) and Art. 17(3)(b) and (e)). "
    "The trace holds no shared value and no password, and your login only as a keyed hash."
)
RECIPIENT_NOTE = (
    "What {partner} received is held by {partner}, not by Sharelock: ask {partner} to erase it."
)


class UnknownDataSource(Exception):
    """The data source is not one this broker connects to."""


@dataclass(frozen=True, slots=True)
class Subject:
    """Who asks: by a verified receipt, or by a proof of control of a data-source account
    (then the data source and the login's keyed hash, as the proof holds them)."""

    identified_by: Literal["receipt", "proof"]
    data_source: str
    login_hash: str | None
    receipt: Receipt | None = None

    def audit_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "actor": "person",
            "outcome": self.identified_by,
            "data_source": self.data_source,
            "login_hash": self.login_hash,
        }
        if self.receipt is not None:
            fields["client_id"] = self.receipt.client_id
            fields["flow_ref"] = self.receipt.flow_ref
        return fields


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class RightsService:
    def __init__(
        self,
        settings: Settings,
        keys: KeyLayer,
        records: Records,
        engine: Engine,
        audit: AsyncAudit,
        partners: AsyncPartners,
        data_sources: Mapping[str, str],
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.records = records
        self.engine = engine
        self.audit = audit
        self.partners = partners
        self.data_sources = data_sources  # id -> name

    # -- who asks -----------------------------------------------------------------------

    async def by_receipt(self, receipt: str) -> Subject:
        """`InvalidReceipt` unless the broker signed it, for this issuer, within retention."""
        # Every signing key the token holds: a receipt signed before a rotation still counts.
        keyring = await self.keys.run_async(self.keys.signature_keyring)
        verified = verify_receipt(
            receipt,
            keyring,
            issuer=self.settings.issuer,
            max_age=self.settings.retention.audit_trace,
        )
        return Subject("receipt", verified.data_source, verified.login_hash, verified)

    # -- the three rights ---------------------------------------------------------------

    async def access(self, subject: Subject) -> dict[str, Any]:
        """The traces about the person (Art. 15). The same shape whether or not any exist."""
        await self.audit.record(EventType.RIGHTS_ACCESS, **subject.audit_fields())
        return await self._view(subject)

    async def erase(self, subject: Subject) -> dict[str, Any]:
        """Erase the identity data kept for the receipt's share, or for every share made with
        the proven login (Art. 17); the audit trace stays, and the answer says why and until
        when."""
        refs = await self._identity_refs(subject)
        held = False
        for ref in refs:
            held = held or await self.records.exists(IDENTITY, ref)
        detail = "identity_held" if held else "nothing_held"
        await self.audit.record(
            EventType.RIGHTS_ERASURE, detail_code=detail, **subject.audit_fields()
        )
        erased = await self.records.delete(IDENTITY, *refs) > 0
        # Credentials kept for maintenance with this person's consent go too: consent to keep
        # them is withdrawn by asking for erasure.
        kept_erased = 0
        if subject.login_hash is not None:
            kept_erased = await run_blocking(delete_for_login_hash, self.engine, subject.login_hash)
        view = await self._view(subject)
        answer: dict[str, Any] = {
            "erased": {"identity_data": erased, "maintenance_credentials": kept_erased},
            "kept": view["kept"],
        }
        receipt = subject.receipt
        if receipt is not None:
            answer["recipient"] = _recipient(receipt.client_id, receipt.partner_name)
        else:
            # Every partner that received data from this login, as the traces show.
            delivered = {
                trace["partner"]["client_id"]: trace["partner"]["name"]
                for trace in view["traces"]
                if trace["event"] == EventType.DATA_DELIVERED.value and trace["partner"]
            }
            answer["recipients"] = [
                _recipient(client_id, name) for client_id, name in sorted(delivered.items())
            ]
        return answer

    async def export(self, subject: Subject) -> dict[str, Any]:
        """Everything held about the person, as one JSON document (Art. 20): the traces and
        the identity data still kept: with a receipt, that share's (an object, or null); with
        a proof, that of every share made with the login (a list)."""
        await self.audit.record(EventType.RIGHTS_EXPORT, **subject.audit_fields())
        view = await self._view(subject)
        found = [
            held for ref in await self._identity_refs(subject) if (held := await self._held(ref))
        ]
        identity: dict[str, Any] | list[dict[str, Any]] | None = found
        if subject.receipt is not None:
            identity = found[0] if found else None
        kept: list[dict[str, Any]] = []
        if subject.login_hash is not None:
            # What is kept and until when; never the credentials themselves.
            kept = [
                {k: v for k, v in row.to_json().items() if k != "login_hash"}
                for row in await run_blocking(list_kept, self.engine, subject.login_hash)
            ]
        return {
            "format": EXPORT_FORMAT,
            "maintenance_credentials": kept,
            "issuer": self.settings.issuer,
            "generated_at": _time(datetime.now(UTC)),
            **view,
            "identity_data": identity,
        }

    async def _held(self, ref: str) -> dict[str, Any] | None:
        held = await self.records.get(IDENTITY, ref)
        if held is None:
            return None
        expires = await self.records.expires(IDENTITY, ref)
        return {
            "flow_ref": ref,
            "identity": dict(held.identity),
            "erased_at_the_latest": _time(expires) if expires is not None else None,
        }

    async def _identity_refs(self, subject: Subject) -> list[str]:
        """The flows whose identity data is the person's: the receipt's, or every flow with
        a row under the proven login hash recent enough for its identity data to be kept."""
        if subject.receipt is not None:
            return [subject.receipt.flow_ref]
        if subject.login_hash is None:
            return []
        retention = self.settings.retention
        since = datetime.now(UTC) - (retention.identity_data + retention.session + FLOW_MARGIN)
        return await run_blocking(flow_refs_of, self.engine, subject.login_hash, since)

    # -- what is shown ------------------------------------------------------------------

    async def _view(self, subject: Subject) -> dict[str, Any]:
        rows, truncated = await run_blocking(
            person_rows,
            self.engine,
            subject.login_hash,
            subject.receipt.flow_ref if subject.receipt else None,
            self.settings.retention.session + FLOW_MARGIN,
        )
        names: dict[str, str] = {}
        for client_id in sorted({row.client_id for row in rows if row.client_id}):
            partner = await self.partners.get(client_id)
            names[client_id] = partner.name if partner is not None else client_id
        retention = self.settings.retention.audit_trace
        latest = max((row.at for row in rows), default=None)
        return {
            "identified_by": subject.identified_by,
            "data_source": {
                "id": subject.data_source,
                "name": self.data_sources.get(subject.data_source, subject.data_source),
            },
            "receipt": _receipt_view(subject.receipt),
            "traces": [_trace(row, names) for row in rows],
            "truncated": truncated,
            "kept": [
                {
                    "what": "audit_trace",
                    "rows": len(rows),
                    "retention_days": retention.days,
                    "until": _time(latest + retention) if latest is not None else None,
                    "reason": KEPT_REASON.format(months=round(retention.days / 30.4375)),
                }
            ],
        }


def _recipient(client_id: str, name: str) -> dict[str, str]:
    return {"client_id": client_id, "name": name, "note": RECIPIENT_NOTE.format(partner=name)}


def _receipt_view(receipt: Receipt | None) -> dict[str, Any] | None:
    if receipt is None:
        return None
    return {
        "receipt_id": receipt.receipt_id,
        "issued_at": _time(receipt.issued_at),
        "expires_at": _time(receipt.expires_at),
        "consent": dict(receipt.consent),
        "flow_ref": receipt.flow_ref,
    }


def _trace(row: AuditRecord, names: Mapping[str, str]) -> dict[str, Any]:
    """A row as the person sees it: what, when, with whom, from where; not the chain's
    hashes, not the login hash (no answer helps anyone compute or match pseudonyms)."""
    return {
        "id": row.id,
        "at": _time(row.at),
        "event": row.event,
        "partner": (
            {"client_id": row.client_id, "name": names.get(row.client_id, row.client_id)}
            if row.client_id
            else None
        ),
        "data_source": row.data_source,
        "outcome": row.outcome,
        "detail_code": row.detail_code,
        "browser_family": row.browser_family,
        "device_type": row.device_type,
        "flow_ref": row.flow_ref,
    }


def person_rows(
    engine: Engine,
    login_hash: str | None,
    flow_ref: str | None,
    flow_span: timedelta,
    limit: int = MAX_TRACES,
) -> tuple[list[AuditRecord], bool]:
    """The person's rows, oldest first (the latest `limit`), and whether older ones were
    left out. Rows with `login_hash`; rows without any login hash of the flows those rows
    (or `flow_ref`) belong to, within `flow_span` of them."""
    row = AuditEventRow
    visible = row.event.not_in([event.value for event in HIDDEN_EVENTS])
    with (
        database_errors(AuditUnavailable, "audit trail unavailable"),
        engine.connect() as connection,
    ):
        own: list[Any] = []
        if login_hash is not None:
            own = list(
                connection.execute(
                    select(row.flow_ref, row.at).where(row.login_hash == login_hash)
                ).all()
            )
        flows = {ref for ref, _ in own if ref}
        moments = [at for _, at in own]
        if flow_ref is not None:
            flows.add(flow_ref)
        matches = []
        if login_hash is not None:
            matches.append(row.login_hash == login_hash)
        if flows:
            unlabelled = and_(row.login_hash.is_(None), row.flow_ref.in_(sorted(flows)))
            if moments:
                unlabelled = and_(
                    unlabelled,
                    row.at >= min(moments) - flow_span,
                    row.at <= max(moments) + flow_span,
                )
            matches.append(unlabelled)
        if not matches:
            return [], False
        query = (
            select_records().where(or_(*matches), visible).order_by(row.id.desc()).limit(limit + 1)
        )
        found = [AuditRecord.from_mapping(r) for r in connection.execute(query).mappings()]
    return list(reversed(found[:limit])), len(found) > limit


def flow_refs_of(engine: Engine, login_hash: str, since: datetime) -> list[str]:
    """The flow references of the rows under `login_hash` written since `since`."""
    row = AuditEventRow
    query = (
        select(row.flow_ref)
        .where(row.login_hash == login_hash, row.at >= since, row.flow_ref.is_not(None))
        .distinct()
    )
    with (
        database_errors(AuditUnavailable, "audit trail unavailable"),
        engine.connect() as connection,
    ):
        refs = [ref for (ref,) in connection.execute(query).all() if ref]
    return sorted(refs)
