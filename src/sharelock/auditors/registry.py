"""Auditor credentials: who may query the audit trail.

A token is `sla_` and 256 random bits (base64url), shown once when the auditor is added.
Only its SHA-256 is stored: with that much entropy a plain digest cannot be reversed, and it
lets `authenticate` find the auditor by an indexed lookup, in one query. A revoked auditor
keeps its row (the trail refers to its id) but its token no longer works.

Adding and revoking are themselves audit rows (`auditor_added`, `auditor_revoked`), written
before the change: if the row cannot be written, the change does not happen.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update

from sharelock.audit import AuditEvent, AuditTrail, EventType
from sharelock.auditors.errors import AuditorsUnavailable, InvalidAuditor, UnknownAuditor
from sharelock.db import AuditorRow, database_errors

TOKEN_PREFIX = "sla_"  # noqa: S105 (a prefix, not a secret)
ID_PREFIX = "au_"
MAX_NAME_LENGTH = 200
MAX_TOKEN_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Auditor:
    auditor_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def actor(self) -> str:
        """How audit rows name this auditor."""
        return f"auditor:{self.auditor_id}"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _clean_name(name: str) -> str:
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise InvalidAuditor("name: must not be empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidAuditor(f"name: at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(c).startswith("C") for c in cleaned):
        raise InvalidAuditor("name: no control characters")
    return cleaned


_COLUMNS = (AuditorRow.auditor_id, AuditorRow.name, AuditorRow.created_at, AuditorRow.revoked_at)


class AuditorRegistry:
    """Auditors in the database behind `engine`; `trail`, if given, records additions and
    revocations (the command line always gives it)."""

    def __init__(self, engine: Engine, trail: AuditTrail | None = None) -> None:
        self._engine = engine
        self._trail = trail

    def __repr__(self) -> str:
        return f"AuditorRegistry(engine={self._engine!r})"

    def _record(self, event: EventType, auditor_id: str) -> None:
        if self._trail is not None:
            self._trail.record(AuditEvent(event, actor="operator", query=f"auditor={auditor_id}"))

    def add(self, name: str) -> tuple[Auditor, str]:
        """A new auditor and its token (the only time the token exists outside its holder)."""
        auditor = Auditor(
            auditor_id=ID_PREFIX + secrets.token_urlsafe(9),
            name=_clean_name(name),
            created_at=datetime.now(UTC),
        )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self._record(EventType.AUDITOR_ADDED, auditor.auditor_id)
        with (
            database_errors(AuditorsUnavailable, "cannot add the auditor", connection_detail=True),
            self._engine.begin() as connection,
        ):
            connection.execute(
                insert(AuditorRow).values(
                    auditor_id=auditor.auditor_id,
                    name=auditor.name,
                    token_hash=token_digest(token),
                    created_at=auditor.created_at,
                    revoked_at=None,
                )
            )
        return auditor, token

    def list(self) -> builtins.list[Auditor]:
        with (
            database_errors(AuditorsUnavailable, "cannot read auditors", connection_detail=True),
            self._engine.connect() as connection,
        ):
            rows = connection.execute(select(*_COLUMNS).order_by(AuditorRow.id)).all()
        return [Auditor(*row) for row in rows]

    def revoke(self, auditor_id: str) -> Auditor:
        """Revoke the auditor's token; revoking twice is not an error."""
        found = [a for a in self.list() if a.auditor_id == auditor_id]
        if not found:
            raise UnknownAuditor("no auditor with that id (see 'sharelock auditors list')")
        if not found[0].active:
            return found[0]
        self._record(EventType.AUDITOR_REVOKED, auditor_id)
        now = datetime.now(UTC)
        with (
            database_errors(AuditorsUnavailable, "cannot revoke", connection_detail=True),
            self._engine.begin() as connection,
        ):
            connection.execute(
                update(AuditorRow)
                .where(AuditorRow.auditor_id == auditor_id, AuditorRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return Auditor(found[0].auditor_id, found[0].name, found[0].created_at, now)

    def authenticate(self, token: str) -> Auditor | None:
        """The active auditor holding `token`, or None."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
            return None
        query = select(*_COLUMNS).where(
            AuditorRow.token_hash == token_digest(token), AuditorRow.revoked_at.is_(None)
        )
        with (
            database_errors(AuditorsUnavailable, "cannot read auditors", connection_detail=True),
            self._engine.connect() as connection,
        ):
            row = connection.execute(query).one_or_none()
        return None if row is None else Auditor(*row)
