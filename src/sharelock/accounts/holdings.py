"""What a signed-in person sees and does with their account: the overview (passkeys, connected
sources with their last sync, the history of shares), removing a passkey, revoking a source,
the export of everything, and deleting the account. And `connect_source`, which the flow will
call when a person keeps a source after a share (the offer after a share comes next).

Every erasure writes its audit row first and does nothing if it cannot; a source's material
goes with its row, at once, and so does everything an account holds when it is deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sharelock.accounts.ceremonies import SESSION
from sharelock.accounts.context import AccountParts, SignedIn
from sharelock.accounts.errors import AccountItemNotFound, NotSignedIn, RecoveryOnly
from sharelock.accounts.history import share_rows
from sharelock.accounts.material import SourceBinding, seal_material
from sharelock.accounts.rows import (
    Account,
    Passkey,
    check_removable,
    delete_account,
    get_account,
    passkeys_of,
    remove_passkey,
)
from sharelock.accounts.sources import (
    Source,
    add_source,
    consents_of,
    delete_source,
    new_source_id,
    set_sync_consent,
    sources_of,
)

# A source's row carries both, checked as the audit rows check them.
from sharelock.audit import DATA_SOURCE_PATTERN, LOGIN_HASH_PATTERN, EventType
from sharelock.blocking import run_blocking
from sharelock.oauth import digest

EXPORT_FORMAT = "sharelock-account-export/1"


def _time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def full_session(signed: SignedIn) -> None:
    if signed.recovery:
        raise RecoveryOnly("add a new passkey first")


class Holdings:
    def __init__(self, parts: AccountParts) -> None:
        self.parts = parts

    def __repr__(self) -> str:
        return "Holdings()"

    async def _account(self, signed: SignedIn) -> Account:
        account = await run_blocking(get_account, self.parts.engine, signed.account_id)
        if account is None:
            raise NotSignedIn("the account is gone")
        return account

    # -- what is shown ----------------------------------------------------------------------

    async def overview(self, signed: SignedIn) -> dict[str, Any]:
        """Everything the account page shows (never the material, never a login hash)."""
        view, _ = await self._overview(signed)
        return view

    async def _overview(self, signed: SignedIn) -> tuple[dict[str, Any], list[Passkey]]:
        """The overview, and the passkeys' rows it was made from (the export adds their ids)."""
        engine = self.parts.engine
        account = await self._account(signed)
        passkeys = await run_blocking(passkeys_of, engine, account.id)
        sources = await run_blocking(sources_of, engine, account.id)
        view = {
            "account": self._account_view(account),
            "recovery_session": signed.recovery,
            "passkeys": [self._passkey_view(p, len(passkeys), account) for p in passkeys],
            "sources": [self._source_view(s) for s in sources],
            "shares": await self._shares(sources),
        }
        return view, passkeys

    def _account_view(self, account: Account) -> dict[str, Any]:
        retention = self.parts.settings.retention.account
        return {
            "created_at": _time(account.created_at),
            "last_used_at": _time(account.last_used_at),
            "deleted_if_unused_until": _time(account.last_used_at + retention),
            "has_recovery_code": account.has_recovery,
        }

    @staticmethod
    def _passkey_view(passkey: Passkey, count: int, account: Account) -> dict[str, Any]:
        return {
            "id": passkey.id,
            "label": passkey.label,
            "created_at": _time(passkey.created_at),
            "last_used_at": _time(passkey.last_used_at),
            "transports": list(passkey.transports),
            "removable": count > 1 or account.has_recovery,
        }

    def _source_view(self, source: Source) -> dict[str, Any]:
        return {
            "id": source.id,
            "data_source": {
                "id": source.data_source,
                "name": self.parts.data_sources.get(source.data_source, source.data_source),
            },
            "connected_at": _time(source.created_at),
            "last_sync_at": _time(source.last_sync_at),
            "sync_consent": source.sync_consent,
            "status": source.status,
            "material": "sealed in the HSM" if source.has_material else None,
        }

    async def _shares(self, sources: list[Source]) -> list[dict[str, Any]]:
        hashes = sorted({source.login_hash for source in sources})
        rows = await run_blocking(share_rows, self.parts.engine, hashes)
        names: dict[str, str] = {}
        for client_id in sorted({row.client_id for row in rows if row.client_id}):
            partner = await self.parts.partners.get(client_id)
            names[client_id] = partner.name if partner is not None else client_id
        return [
            {
                "at": _time(row.at),
                "event": row.event,
                "partner": names.get(row.client_id, row.client_id) if row.client_id else None,
                "data_source": self.parts.data_sources.get(row.data_source or "", row.data_source),
            }
            for row in rows
        ]

    async def export(self, signed: SignedIn) -> dict[str, Any]:
        """Everything the account holds, as one JSON document (GDPR Art. 20). The material is
        named, never opened: it is the data source's to give, and it stays sealed."""
        full_session(signed)
        await self.parts.audit_change(EventType.ACCOUNT_EXPORTED, signed.account_id)
        engine = self.parts.engine
        view, passkeys = await self._overview(signed)
        consents = await run_blocking(consents_of, engine, signed.account_id)
        for shown, passkey in zip(view["passkeys"], passkeys, strict=True):
            shown["credential_id"] = passkey.credential_id
        return {
            "format": EXPORT_FORMAT,
            "issuer": self.parts.settings.issuer,
            "generated_at": _time(self.parts.now()),
            "account": view["account"],
            "passkeys": view["passkeys"],
            "sources": view["sources"],
            "consents": [
                {
                    "purpose": c.purpose,
                    "data_source": c.data_source,
                    "given_at": _time(c.given_at),
                    "withdrawn_at": _time(c.withdrawn_at),
                }
                for c in consents
            ],
            "shares": view["shares"],
        }

    # -- changes ----------------------------------------------------------------------------

    async def remove_passkey(self, signed: SignedIn, passkey_id: int) -> None:
        full_session(signed)
        engine = self.parts.engine
        await run_blocking(check_removable, engine, signed.account_id, passkey_id)
        await self.parts.audit_change(EventType.ACCOUNT_PASSKEY_REMOVED, signed.account_id)
        await run_blocking(remove_passkey, engine, signed.account_id, passkey_id)

    async def revoke_source(self, signed: SignedIn, source_id: str) -> None:
        """Erase a connected source and its material, now."""
        full_session(signed)
        engine = self.parts.engine
        sources = await run_blocking(sources_of, engine, signed.account_id)
        source = next((s for s in sources if s.id == source_id), None)
        if source is None:
            raise AccountItemNotFound("no such source in this account")
        await self.parts.audit_change(
            EventType.ACCOUNT_SOURCE_REVOKED,
            signed.account_id,
            data_source=source.data_source,
            login_hash=source.login_hash,
        )
        await run_blocking(delete_source, engine, signed.account_id, source_id, self.parts.now())

    async def delete(self, signed: SignedIn) -> None:
        """Erase the account and everything it holds, now; its audit row first."""
        full_session(signed)
        await self.parts.audit_change(
            EventType.ACCOUNT_DELETED, signed.account_id, outcome="deleted"
        )
        await run_blocking(delete_account, self.parts.engine, signed.account_id)
        await self.parts.records.delete(SESSION, digest(signed.handle))

    async def set_sync(self, signed: SignedIn, source_id: str, allowed: bool) -> bool:
        """Allow or stop the periodic re-sync of a source (off by default)."""
        full_session(signed)
        return await run_blocking(
            set_sync_consent,
            self.parts.engine,
            signed.account_id,
            source_id,
            allowed,
            self.parts.now(),
        )

    async def connect_source(
        self, account_id: str, data_source: str, login_hash: str, material: bytes | None
    ) -> str:
        """Keep a data source for an account: the login's keyed hash, and the re-sync
        material sealed in the HSM for this very row (None: nothing to re-sync with)."""
        if not DATA_SOURCE_PATTERN.fullmatch(data_source):
            raise ValueError("not a data source id")
        if not LOGIN_HASH_PATTERN.fullmatch(login_hash):
            raise ValueError("not a login hash")
        source_id = new_source_id()
        sealed = None
        if material is not None:
            binding = SourceBinding(source_id, account_id, data_source, login_hash)
            keys = self.parts.keys
            sealed = await keys.run_async(seal_material, keys, material, binding)
        now = self.parts.now()
        source = Source(
            source_id, account_id, data_source, login_hash, False, "connected", now, None, False
        )
        await run_blocking(add_source, self.parts.engine, source, sealed, now)
        return source_id
