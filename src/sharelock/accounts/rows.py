"""The accounts and their passkeys (`db.models`: accounts, account_passkeys), read and written
here only, synchronously (the service awaits them on the database threads,
`sharelock.blocking`); the sources and consents are in `sources.py`. What leaves this module are
frozen dataclasses, never ORM rows.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, RowMapping, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from sharelock.accounts.errors import (
    AccountItemNotFound,
    AccountsUnavailable,
    CeremonyRefused,
    LastPasskey,
)
from sharelock.db import (
    AccountConsentRow,
    AccountPasskeyRow,
    AccountRow,
    AccountSourceRow,
    database_errors,
)

ACCOUNT_ID = re.compile(r"ac_[0-9a-f]{32}")


def new_account_id() -> str:
    return "ac_" + secrets.token_hex(16)


def account_ref(account_id: str) -> str:
    """The account as audit rows name it: a digest of its id, never the id itself."""
    return "account:" + hashlib.sha256(account_id.encode("ascii")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    created_at: datetime
    last_used_at: datetime
    has_recovery: bool


@dataclass(frozen=True, slots=True)
class Passkey:
    id: int
    account_id: str
    credential_id: str  # base64url
    public_key: bytes = field(repr=False)
    sign_count: int
    transports: tuple[str, ...]
    label: str
    created_at: datetime
    last_used_at: datetime | None


@contextmanager
def sql(engine: Engine, write: bool = False) -> Iterator[Connection]:
    with database_errors(AccountsUnavailable, "accounts unavailable", connection_detail=True):
        if write:
            with engine.begin() as connection:
                yield connection
        else:
            with engine.connect() as connection:
                yield connection


_ACCOUNT = (AccountRow.id, AccountRow.created_at, AccountRow.last_used_at, AccountRow.recovery_hash)
_PASSKEY = (
    AccountPasskeyRow.id,
    AccountPasskeyRow.account_id,
    AccountPasskeyRow.credential_id,
    AccountPasskeyRow.public_key,
    AccountPasskeyRow.sign_count,
    AccountPasskeyRow.transports,
    AccountPasskeyRow.label,
    AccountPasskeyRow.created_at,
    AccountPasskeyRow.last_used_at,
)


def _account(row: RowMapping) -> Account:
    return Account(
        row["id"], row["created_at"], row["last_used_at"], row["recovery_hash"] is not None
    )


def _passkey(row: RowMapping) -> Passkey:
    return Passkey(
        id=int(row["id"]),
        account_id=row["account_id"],
        credential_id=row["credential_id"],
        public_key=bytes(row["public_key"]),
        sign_count=int(row["sign_count"]),
        transports=tuple(row["transports"] or ()),
        label=row["label"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
    )


@dataclass(frozen=True, slots=True, repr=False)
class PasskeyToKeep:
    """A verified passkey, as the table stores it."""

    credential_id: str
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    label: str


def _insert_passkey(
    connection: Connection, account_id: str, passkey: PasskeyToKeep, now: datetime
) -> int:
    try:
        with connection.begin_nested():
            result = connection.execute(
                insert(AccountPasskeyRow).values(
                    account_id=account_id,
                    credential_id=passkey.credential_id,
                    public_key=passkey.public_key,
                    sign_count=passkey.sign_count,
                    transports=list(passkey.transports),
                    label=passkey.label,
                    created_at=now,
                    last_used_at=None,
                )
            )
    except IntegrityError:
        # The unique credential id: this authenticator's passkey is registered already.
        raise CeremonyRefused("already_registered") from None
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


# -- accounts ----------------------------------------------------------------------------------


def create_account(
    engine: Engine, account_id: str, passkey: PasskeyToKeep, recovery_hash: str, now: datetime
) -> None:
    """The account, its first passkey and the consent to the account itself, in one
    transaction."""
    with sql(engine, write=True) as connection:
        connection.execute(
            insert(AccountRow).values(
                id=account_id, created_at=now, last_used_at=now, recovery_hash=recovery_hash
            )
        )
        _insert_passkey(connection, account_id, passkey, now)
        connection.execute(
            insert(AccountConsentRow).values(
                account_id=account_id, purpose="account", data_source=None, given_at=now
            )
        )


def get_account(engine: Engine, account_id: str) -> Account | None:
    if not ACCOUNT_ID.fullmatch(account_id):
        return None
    with sql(engine) as connection:
        row = (
            connection.execute(select(*_ACCOUNT).where(AccountRow.id == account_id))
            .mappings()
            .first()
        )
    return None if row is None else _account(row)


def account_for_recovery(engine: Engine, recovery_hash: str) -> str | None:
    """The account whose recovery code this is, if any."""
    with sql(engine) as connection:
        account_id = connection.scalar(
            select(AccountRow.id).where(AccountRow.recovery_hash == recovery_hash)
        )
    return None if account_id is None else str(account_id)


def use_recovery(engine: Engine, account_id: str, recovery_hash: str, now: datetime) -> bool:
    """Erase the recovery code (it serves once); False if another request used it first."""
    with sql(engine, write=True) as connection:
        used = connection.execute(
            update(AccountRow)
            .where(AccountRow.id == account_id, AccountRow.recovery_hash == recovery_hash)
            .values(recovery_hash=None, last_used_at=now)
        ).rowcount
    return used == 1


def unused_accounts(engine: Engine, before: datetime, limit: int = 500) -> list[str]:
    """Accounts last used before `before`, oldest first."""
    query = (
        select(AccountRow.id)
        .where(AccountRow.last_used_at < before)
        .order_by(AccountRow.last_used_at)
        .limit(limit)
    )
    with sql(engine) as connection:
        return [str(account_id) for account_id in connection.scalars(query)]


def delete_account(engine: Engine, account_id: str, unused_before: datetime | None = None) -> bool:
    """Erase the account and everything it holds, in one transaction; False if it was gone
    (or, with `unused_before`, used since then: retention leaves it)."""
    with sql(engine, write=True) as connection:
        if unused_before is not None:
            still_unused = connection.scalar(
                select(AccountRow.id).where(
                    AccountRow.id == account_id, AccountRow.last_used_at < unused_before
                )
            )
            if still_unused is None:
                return False
        for table in (AccountConsentRow, AccountSourceRow, AccountPasskeyRow):
            connection.execute(delete(table).where(table.account_id == account_id))
        deleted = connection.execute(delete(AccountRow).where(AccountRow.id == account_id))
    return bool(deleted.rowcount)


# -- passkeys ----------------------------------------------------------------------------------


def find_passkey(engine: Engine, credential_id: str) -> Passkey | None:
    with sql(engine) as connection:
        row = (
            connection.execute(
                select(*_PASSKEY).where(AccountPasskeyRow.credential_id == credential_id)
            )
            .mappings()
            .first()
        )
    return None if row is None else _passkey(row)


def passkeys_of(engine: Engine, account_id: str) -> list[Passkey]:
    query = (
        select(*_PASSKEY)
        .where(AccountPasskeyRow.account_id == account_id)
        .order_by(AccountPasskeyRow.id)
    )
    with sql(engine) as connection:
        return [_passkey(row) for row in connection.execute(query).mappings()]


def record_use(engine: Engine, passkey: Passkey, new_count: int, now: datetime) -> bool:
    """Store the passkey's new counter if it is still the one the verification compared
    against (two uses of one answer race here: one wins); the account counts as used."""
    with sql(engine, write=True) as connection:
        moved = connection.execute(
            update(AccountPasskeyRow)
            .where(
                AccountPasskeyRow.id == passkey.id,
                AccountPasskeyRow.sign_count == passkey.sign_count,
            )
            .values(sign_count=new_count, last_used_at=now)
        ).rowcount
        if moved == 1:
            touch(connection, passkey.account_id, now)
    return moved == 1


def touch(connection: Connection, account_id: str, now: datetime) -> None:
    connection.execute(
        update(AccountRow).where(AccountRow.id == account_id).values(last_used_at=now)
    )


def add_passkey(
    engine: Engine,
    account_id: str,
    passkey: PasskeyToKeep,
    now: datetime,
    recovery_hash: str | None = None,
) -> int:
    """Register one more passkey (and, if given, a new recovery code); its id."""
    with sql(engine, write=True) as connection:
        passkey_id = _insert_passkey(connection, account_id, passkey, now)
        if recovery_hash is not None:
            connection.execute(
                update(AccountRow)
                .where(AccountRow.id == account_id)
                .values(recovery_hash=recovery_hash)
            )
        touch(connection, account_id, now)
    return passkey_id


def check_removable(engine: Engine, account_id: str, passkey_id: int) -> None:
    """`AccountItemNotFound` if the account has no such passkey, `LastPasskey` if it is the
    last one and the recovery code is used up."""
    with sql(engine) as connection:
        _check_removable(connection, account_id, passkey_id)


def _check_removable(connection: Connection, account_id: str, passkey_id: int) -> None:
    ids = list(
        connection.scalars(
            select(AccountPasskeyRow.id).where(AccountPasskeyRow.account_id == account_id)
        )
    )
    if passkey_id not in ids:
        raise AccountItemNotFound("no such passkey in this account")
    if len(ids) == 1:
        recovery = connection.scalar(
            select(AccountRow.recovery_hash).where(AccountRow.id == account_id)
        )
        if recovery is None:
            raise LastPasskey("the last passkey cannot go while no recovery code is left")


def remove_passkey(engine: Engine, account_id: str, passkey_id: int) -> None:
    with sql(engine, write=True) as connection:
        _check_removable(connection, account_id, passkey_id)
        connection.execute(
            delete(AccountPasskeyRow).where(
                AccountPasskeyRow.id == passkey_id, AccountPasskeyRow.account_id == account_id
            )
        )
