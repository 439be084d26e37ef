"""The accounts' connected sources and consents (`db.models`: account_sources,
account_consents), read and written here only, synchronously. A source's sealed material
leaves only through `sealed_material`, for the connector at a sync.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, RowMapping, delete, func, insert, select, update

from sharelock.accounts.errors import AccountItemNotFound
from sharelock.accounts.rows import sql, touch
from sharelock.db import AccountConsentRow, AccountSourceRow

SOURCE_ID = re.compile(r"as_[0-9a-f]{32}")


def new_source_id() -> str:
    return "as_" + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    account_id: str
    data_source: str
    login_hash: str
    sync_consent: bool
    status: str
    created_at: datetime
    last_sync_at: datetime | None
    has_material: bool


@dataclass(frozen=True, slots=True)
class Consent:
    purpose: str
    data_source: str | None
    given_at: datetime
    withdrawn_at: datetime | None


_SOURCE = (
    AccountSourceRow.id,
    AccountSourceRow.account_id,
    AccountSourceRow.data_source,
    AccountSourceRow.login_hash,
    AccountSourceRow.sync_consent,
    AccountSourceRow.status,
    AccountSourceRow.created_at,
    AccountSourceRow.last_sync_at,
    AccountSourceRow.sealed_material.is_not(None).label("has_material"),
)


def _source(row: RowMapping) -> Source:
    return Source(
        id=row["id"],
        account_id=row["account_id"],
        data_source=row["data_source"],
        login_hash=row["login_hash"],
        sync_consent=bool(row["sync_consent"]),
        status=row["status"],
        created_at=row["created_at"],
        last_sync_at=row["last_sync_at"],
        has_material=bool(row["has_material"]),
    )


# -- sources and consents ------------------------------------------------------------------


def add_source(
    engine: Engine, source: Source, sealed_material: bytes | None, now: datetime
) -> None:
    with sql(engine, write=True) as connection:
        connection.execute(
            insert(AccountSourceRow).values(
                id=source.id,
                account_id=source.account_id,
                data_source=source.data_source,
                login_hash=source.login_hash,
                sealed_material=sealed_material,
                sync_consent=False,
                status="connected",
                created_at=now,
                last_sync_at=None,
            )
        )
        connection.execute(
            insert(AccountConsentRow).values(
                account_id=source.account_id,
                purpose="source",
                data_source=source.data_source,
                given_at=now,
            )
        )


def sources_of(engine: Engine, account_id: str) -> list[Source]:
    query = (
        select(*_SOURCE)
        .where(AccountSourceRow.account_id == account_id)
        .order_by(AccountSourceRow.created_at, AccountSourceRow.id)
    )
    with sql(engine) as connection:
        return [_source(row) for row in connection.execute(query).mappings()]


def source_of(engine: Engine, account_id: str, source_id: str) -> Source | None:
    """One source of an account, if it is there."""
    query = select(*_SOURCE).where(
        AccountSourceRow.id == source_id, AccountSourceRow.account_id == account_id
    )
    with sql(engine) as connection:
        row = connection.execute(query).mappings().first()
    return None if row is None else _source(row)


def sealed_material(engine: Engine, account_id: str, source_id: str) -> bytes | None:
    """A source's sealed material, for the connector at a sync (opened in the HSM only)."""
    query = select(AccountSourceRow.sealed_material).where(
        AccountSourceRow.id == source_id, AccountSourceRow.account_id == account_id
    )
    with sql(engine) as connection:
        sealed = connection.scalar(query)
    return None if sealed is None else bytes(sealed)


def delete_source(engine: Engine, account_id: str, source_id: str, now: datetime) -> Source:
    """Erase a connected source with its material; the consents given for its data source are
    marked withdrawn when no other source of that data source remains."""
    with sql(engine, write=True) as connection:
        row = (
            connection.execute(
                select(*_SOURCE).where(
                    AccountSourceRow.id == source_id, AccountSourceRow.account_id == account_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise AccountItemNotFound("no such source in this account")
        source = _source(row)
        connection.execute(delete(AccountSourceRow).where(AccountSourceRow.id == source_id))
        others = connection.scalar(
            select(func.count())
            .select_from(AccountSourceRow)
            .where(
                AccountSourceRow.account_id == account_id,
                AccountSourceRow.data_source == source.data_source,
            )
        )
        if not others:
            connection.execute(
                update(AccountConsentRow)
                .where(
                    AccountConsentRow.account_id == account_id,
                    AccountConsentRow.data_source == source.data_source,
                    AccountConsentRow.withdrawn_at.is_(None),
                )
                .values(withdrawn_at=now)
            )
    return source


def set_sync_consent(
    engine: Engine, account_id: str, source_id: str, allowed: bool, now: datetime
) -> bool:
    """Allow or stop the periodic re-sync of a source (off when connected), with the consent's
    date, or its withdrawal's; False if nothing changed."""
    with sql(engine, write=True) as connection:
        source = connection.execute(
            select(AccountSourceRow.data_source, AccountSourceRow.sync_consent).where(
                AccountSourceRow.id == source_id, AccountSourceRow.account_id == account_id
            )
        ).first()
        if source is None:
            raise AccountItemNotFound("no such source in this account")
        if bool(source.sync_consent) == allowed:
            return False
        connection.execute(
            update(AccountSourceRow)
            .where(AccountSourceRow.id == source_id)
            .values(sync_consent=allowed)
        )
        if allowed:
            connection.execute(
                insert(AccountConsentRow).values(
                    account_id=account_id,
                    purpose="sync",
                    data_source=source.data_source,
                    given_at=now,
                )
            )
        else:
            connection.execute(
                update(AccountConsentRow)
                .where(
                    AccountConsentRow.account_id == account_id,
                    AccountConsentRow.purpose == "sync",
                    AccountConsentRow.data_source == source.data_source,
                    AccountConsentRow.withdrawn_at.is_(None),
                )
                .values(withdrawn_at=now)
            )
    return True


def consents_of(engine: Engine, account_id: str) -> list[Consent]:
    query = (
        select(
            AccountConsentRow.purpose,
            AccountConsentRow.data_source,
            AccountConsentRow.given_at,
            AccountConsentRow.withdrawn_at,
        )
        .where(AccountConsentRow.account_id == account_id)
        .order_by(AccountConsentRow.id)
    )
    with sql(engine) as connection:
        return [
            Consent(row.purpose, row.data_source, row.given_at, row.withdrawn_at)
            for row in connection.execute(query)
        ]


def login_hashes(sources: Sequence[Source]) -> list[str]:
    return sorted({source.login_hash for source in sources})


def record_sync(
    engine: Engine,
    account_id: str,
    source_id: str,
    ok: bool,
    now: datetime,
    sealed_material: bytes | None = None,
) -> None:
    """A sync's outcome (a one-click share, or a periodic check): `connected` with its date,
    or `failing` (the person is told at their next visit). `sealed_material`: the source gave
    a new device token, sealed for this row, which replaces the old one."""
    values: dict[str, object] = {"status": "connected" if ok else "failing"}
    if ok:
        values["last_sync_at"] = now
    if sealed_material is not None:
        values["sealed_material"] = sealed_material
    with sql(engine, write=True) as connection:
        connection.execute(
            update(AccountSourceRow)
            .where(AccountSourceRow.id == source_id, AccountSourceRow.account_id == account_id)
            .values(**values)
        )
        touch(connection, account_id, now)  # a use of the account: retention counts from here


def sources_due(engine: Engine, synced_before: datetime, limit: int = 100) -> list[Source]:
    """Sources whose person allowed periodic re-syncs, working, with material, and not synced
    (nor connected) since `synced_before`: the periodic re-sync's work list."""
    last = func.coalesce(AccountSourceRow.last_sync_at, AccountSourceRow.created_at)
    query = (
        select(*_SOURCE)
        .where(
            AccountSourceRow.sync_consent.is_(True),
            AccountSourceRow.status == "connected",
            AccountSourceRow.sealed_material.is_not(None),
            last < synced_before,
        )
        .order_by(last)
        .limit(limit)
    )
    with sql(engine) as connection:
        return [_source(row) for row in connection.execute(query).mappings()]


def claim_sync(engine: Engine, source: Source, now: datetime) -> bool:
    """Move a due source's sync date to now, if nobody moved it since it was read: the one
    worker that succeeds checks it."""
    with sql(engine, write=True) as connection:
        done = connection.execute(
            update(AccountSourceRow)
            .where(
                AccountSourceRow.id == source.id,
                AccountSourceRow.last_sync_at.is_(None)
                if source.last_sync_at is None
                else AccountSourceRow.last_sync_at == source.last_sync_at,
            )
            .values(last_sync_at=now)
        )
    return bool(done.rowcount)
