"""Credentials kept for corrective maintenance (SPEC, "Retention": only with the person's consent
after a failed collection, encrypted under an HSM key, 120 days at most).

Why the credentials are sealed again rather than kept as the JWE that came from the browser: the
JWE is encrypted to an RSA key that rotation retires and destroys once its grace period is over
(`key_grace_period`, 7 days by default), long before 120 days. So when the person says yes, the
broker opens the JWE through the HSM as it does for a login, seals the clear credentials at once
with the token's AES storage key (`KeyLayer.seal_in_token`: AES-GCM inside the token, a key that
rotation does not touch), and wipes its clear copy. The AES-GCM additional data binds the blob to
its row (id, data source, partner, login hash, expiry): a blob copied to another row, or a row
whose expiry was pushed back in SQL, does not open.

Only `reveal` opens a blob, for `sharelock maintenance show`, which writes its audit row first.
`purge` (also run by `run_retention`) deletes the rows past their expiry; `reveal` refuses them
even before the purge.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from sharelock.config import Retention
from sharelock.connectors import Outcome
from sharelock.db import DatabaseUnavailable, MaintenanceCredentialsRow, database_errors
from sharelock.envelope import OpenedSecret
from sharelock.errors import SharelockError
from sharelock.keys import DecryptionFailed, KeyLayer

ID_PREFIX = "mt_"
ID_PATTERN = re.compile(r"mt_[0-9a-f]{32}")
_AAD_VERSION = "sharelock-maintenance-v1"

# The failures that engineers could fix by repairing the connector. A wrong password, a locked
# account or a wrong one-time code are the person's to fix: no offer then.
MAINTAINABLE: frozenset[Outcome] = frozenset(
    {Outcome.SOURCE_UNAVAILABLE, Outcome.SOURCE_TIMEOUT, Outcome.INVALID_DATA}
)

_META = (
    MaintenanceCredentialsRow.id,
    MaintenanceCredentialsRow.created_at,
    MaintenanceCredentialsRow.expires_at,
    MaintenanceCredentialsRow.data_source,
    MaintenanceCredentialsRow.login_hash,
    MaintenanceCredentialsRow.client_id,
    MaintenanceCredentialsRow.flow_ref,
)


class MaintenanceError(SharelockError):
    """Base of the maintenance errors. Messages are fixed text: never a credential."""


class MaintenanceNotFound(MaintenanceError):
    """No kept credentials with that id (never kept, deleted, or purged)."""


class MaintenanceExpired(MaintenanceError):
    """The row is past its expiry: it is refused, and the next purge deletes it."""


def new_maintenance_id() -> str:
    """A random id (128 bits, hex: it can never be mistaken for a command-line option)."""
    return ID_PREFIX + secrets.token_hex(16)


def is_maintenance_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def offers_maintenance(outcome: Outcome) -> bool:
    return outcome in MAINTAINABLE


@dataclass(frozen=True, slots=True)
class KeptCredentials:
    """What is known of kept credentials without opening them: pseudonymous fields only."""

    id: str
    created_at: datetime
    expires_at: datetime
    data_source: str
    login_hash: str
    client_id: str
    flow_ref: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "data_source": self.data_source,
            "login_hash": self.login_hash,
            "client_id": self.client_id,
            "flow_ref": self.flow_ref,
        }

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True, slots=True)
class SealedCredentials:
    """A row ready to be stored: its fields and the blob sealed in the HSM."""

    kept: KeptCredentials
    sealed: bytes

    def __repr__(self) -> str:
        return f"SealedCredentials(id={self.kept.id!r}, sealed=<{len(self.sealed)} bytes>)"


def additional_data(kept: KeptCredentials) -> bytes:
    """What the sealed blob is bound to. The expiry is in whole seconds (rows store it so)."""
    return json.dumps(
        [
            _AAD_VERSION,
            kept.id,
            kept.data_source,
            kept.client_id,
            kept.login_hash,
            int(kept.expires_at.timestamp()),
        ],
        separators=(",", ":"),
    ).encode("ascii")


def _kept(row: Any) -> KeptCredentials:
    return KeptCredentials(
        id=row.id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        data_source=row.data_source,
        login_hash=row.login_hash,
        client_id=row.client_id,
        flow_ref=row.flow_ref,
    )


class MaintenanceVault:
    """The `maintenance_credentials` table and the HSM key that seals its blobs. Synchronous:
    the web layer calls `seal` on the key layer's HSM thread and the rest on a worker thread."""

    def __init__(self, engine: Engine, keys: KeyLayer, retention: Retention) -> None:
        self._engine = engine
        self._keys = keys
        self._retention = retention

    def __repr__(self) -> str:
        return f"MaintenanceVault(engine={self._engine!r})"

    def _sql(self, write: bool = False) -> AbstractContextManager[Connection]:
        return _sql(self._engine, write)

    # -- keeping ----------------------------------------------------------------------------

    def seal(
        self,
        maintenance_id: str,
        credentials: bytes,
        *,
        data_source: str,
        login_hash: str,
        client_id: str,
        flow_ref: str,
        now: datetime | None = None,
    ) -> SealedCredentials:
        """Seal clear credentials (the JSON object `{"login", "password"}`) in the HSM, for a
        row that expires `Retention.maintenance_credentials` from now. HSM only, no SQL."""
        if not is_maintenance_id(maintenance_id):
            raise ValueError("not a maintenance id")
        created = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        kept = KeptCredentials(
            id=maintenance_id,
            created_at=created,
            expires_at=created + self._retention.maintenance_credentials,
            data_source=data_source,
            login_hash=login_hash,
            client_id=client_id,
            flow_ref=flow_ref,
        )
        return SealedCredentials(kept, self._keys.seal_in_token(credentials, additional_data(kept)))

    def store(self, sealed: SealedCredentials) -> KeptCredentials:
        kept = sealed.kept
        with self._sql(write=True) as connection:
            connection.execute(
                insert(MaintenanceCredentialsRow).values(
                    id=kept.id,
                    created_at=kept.created_at,
                    expires_at=kept.expires_at,
                    data_source=kept.data_source,
                    login_hash=kept.login_hash,
                    client_id=kept.client_id,
                    flow_ref=kept.flow_ref,
                    sealed=sealed.sealed,
                )
            )
        return kept

    # -- reading ----------------------------------------------------------------------------

    def get(self, maintenance_id: str) -> KeptCredentials | None:
        return get_kept(self._engine, maintenance_id)

    def list(self) -> list[KeptCredentials]:
        return list_kept(self._engine)

    def reveal(self, maintenance_id: str, now: datetime | None = None) -> OpenedSecret:
        """The clear credentials of a live row, opened in the HSM; the caller wipes them (use
        the result in a `with` block). Callers write the audit row of the access first."""
        if not is_maintenance_id(maintenance_id):
            raise MaintenanceNotFound("no kept credentials with that id")
        with self._sql() as connection:
            row = connection.execute(
                select(*_META, MaintenanceCredentialsRow.sealed).where(
                    MaintenanceCredentialsRow.id == maintenance_id
                )
            ).one_or_none()
        if row is None:
            raise MaintenanceNotFound("no kept credentials with that id")
        kept = _kept(row)
        if kept.expired(now or datetime.now(UTC)):
            raise MaintenanceExpired("these credentials are past their retention limit")
        try:
            clear = self._keys.open_in_token(bytes(row.sealed), additional_data(kept))
        except DecryptionFailed:
            raise MaintenanceError(
                "the kept credentials do not open: the row was altered, or the storage key "
                "is not the one that sealed them"
            ) from None
        return OpenedSecret(bytearray(clear))

    # -- erasing ----------------------------------------------------------------------------

    def delete(self, maintenance_id: str) -> bool:
        return delete_kept(self._engine, maintenance_id)

    def purge(self, now: datetime | None = None) -> int:
        return purge_expired(self._engine, now)


# -- what needs no key: listing and erasing ------------------------------------------------


@contextmanager
def _sql(engine: Engine, write: bool = False) -> Iterator[Connection]:
    with database_errors(
        DatabaseUnavailable, "maintenance credentials unavailable", connection_detail=True
    ):
        if write:
            with engine.begin() as connection:
                yield connection
        else:
            with engine.connect() as connection:
                yield connection


def get_kept(engine: Engine, maintenance_id: str) -> KeptCredentials | None:
    if not is_maintenance_id(maintenance_id):
        return None
    with _sql(engine) as connection:
        row = connection.execute(
            select(*_META).where(MaintenanceCredentialsRow.id == maintenance_id)
        ).one_or_none()
    return None if row is None else _kept(row)


def list_kept(engine: Engine, login_hash: str | None = None) -> list[KeptCredentials]:
    """Every row (or one login's, by its keyed hash), oldest first; expired ones included
    until the purge."""
    query = select(*_META).order_by(
        MaintenanceCredentialsRow.created_at, MaintenanceCredentialsRow.id
    )
    if login_hash is not None:
        query = query.where(MaintenanceCredentialsRow.login_hash == login_hash)
    with _sql(engine) as connection:
        return [_kept(row) for row in connection.execute(query)]


def delete_kept(engine: Engine, maintenance_id: str) -> bool:
    """Erase one row now; False if there was none."""
    if not is_maintenance_id(maintenance_id):
        return False
    with _sql(engine, write=True) as connection:
        deleted = connection.execute(
            delete(MaintenanceCredentialsRow).where(MaintenanceCredentialsRow.id == maintenance_id)
        ).rowcount
    return bool(deleted)


def delete_for_login_hash(engine: Engine, login_hash: str, client_id: str | None = None) -> int:
    """Erase every row of one login (the person's right to erasure), or only those kept after
    a share with one partner (`client_id`: consent withdrawn, processing restricted or objected
    to for that share); returns how many."""
    row = MaintenanceCredentialsRow
    query = delete(row).where(row.login_hash == login_hash)
    if client_id is not None:
        query = query.where(row.client_id == client_id)
    with _sql(engine, write=True) as connection:
        deleted = connection.execute(query).rowcount
    return int(deleted or 0)


def purge_expired(engine: Engine, now: datetime | None = None) -> int:
    """Delete every row whose expiry has passed; returns how many. Idempotent. Needs no key:
    retention can erase even when the HSM is away."""
    cutoff = now or datetime.now(UTC)
    with _sql(engine, write=True) as connection:
        deleted = connection.execute(
            delete(MaintenanceCredentialsRow).where(MaintenanceCredentialsRow.expires_at <= cutoff)
        ).rowcount
    return int(deleted or 0)
