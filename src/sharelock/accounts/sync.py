"""Signing in to a remembered source: the one-click share's collection and the periodic
re-sync a person may allow (docs/accounts.md).

The material is the source's device token where it gives one, otherwise the credentials, in
both cases sealed in the HSM for its row (`accounts.material`). It is opened only here, inside
the connector call, at the moment of the sync, and wiped when the call returns. Whether it
still works is written back on the row: `connected` with the date, or `failing` when the
source refuses it (the account page and the consent screen then say so, and the person signs
in again). A periodic re-sync checks the sign-in only: it collects nothing (`scopes=()`) and
keeps nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import timedelta

from sharelock.accounts.context import AccountParts
from sharelock.accounts.material import (
    MaterialUnreadable,
    SourceBinding,
    open_material,
    seal_material,
)
from sharelock.accounts.rows import account_ref
from sharelock.accounts.sources import (
    Source,
    claim_sync,
    record_sync,
    sealed_material,
    sources_due,
)
from sharelock.audit import EventType
from sharelock.blocking import run_blocking
from sharelock.connectors import CollectionResult, Connector, Outcome, RemembersDevice
from sharelock.envelope import EnvelopeRejected, OpenedSecret
from sharelock.flow import CREDENTIAL_MEMBERS

log = logging.getLogger("sharelock.accounts")

TOKEN_MEMBERS = {"device_token": 1024}
# What says the remembered material no longer works: the source is marked failing.
REFUSED = frozenset(
    {Outcome.INVALID_CREDENTIALS, Outcome.ACCOUNT_LOCKED, Outcome.DEVICE_TOKEN_REVOKED}
)


def token_material(device_token: str) -> bytes:
    return json.dumps({"device_token": device_token}, separators=(",", ":")).encode("utf-8")


class SourceSync:
    def __init__(self, parts: AccountParts, connectors: Mapping[str, Connector]) -> None:
        self.parts = parts
        self.connectors = connectors

    def __repr__(self) -> str:
        return "SourceSync()"

    async def sign_in(
        self, source: Source, connector: Connector, scopes: tuple[str, ...]
    ) -> CollectionResult:
        """Open the material (HSM), sign in with it and collect `scopes` (none: a check), wipe
        it, and write on the row whether it still works."""
        engine, keys = self.parts.engine, self.parts.keys
        sealed = await run_blocking(sealed_material, engine, source.account_id, source.id)
        if sealed is None:  # revoked meanwhile
            return CollectionResult(Outcome.DEVICE_TOKEN_REVOKED)
        binding = SourceBinding(source.id, source.account_id, source.data_source, source.login_hash)
        try:
            opened = await keys.run_async(open_material, keys, sealed, binding)
            values = _values(opened)
        except MaterialUnreadable:
            # Altered, moved, or sealed under another storage key: nothing to sign in with.
            log.error("a remembered source's material does not open; marked failing")
            unreadable = CollectionResult(Outcome.DEVICE_TOKEN_REVOKED)
            await self._write_back(source, unreadable)
            return unreadable
        with opened:
            try:
                if "device_token" not in values:
                    result = await connector.login(values["login"], values["password"], scopes)
                elif isinstance(connector, RemembersDevice):
                    result = await connector.resume(values["device_token"], scopes)
                else:
                    result = CollectionResult(Outcome.SOURCE_UNAVAILABLE)
            finally:
                values.clear()
        await self._write_back(source, result)
        return result

    async def _write_back(self, source: Source, result: CollectionResult) -> None:
        """The row's status after a sync; a new device token (a source that rotates them)
        replaces the old one, sealed for the same row."""
        token, result.device_token = result.device_token, None
        ok = result.outcome is Outcome.COLLECTED
        if not ok and result.outcome not in REFUSED:
            return  # the source was down or slow, or asks a code: nothing learnt
        resealed = None
        if ok and token is not None:
            keys = self.parts.keys
            binding = SourceBinding(
                source.id, source.account_id, source.data_source, source.login_hash
            )
            resealed = await keys.run_async(seal_material, keys, token_material(token), binding)
        await run_blocking(
            record_sync,
            self.parts.engine,
            source.account_id,
            source.id,
            ok,
            self.parts.now(),
            resealed,
        )

    async def sync_due(self, every: timedelta, limit: int = 100) -> int:
        """The periodic re-sync, for sources whose person allowed it: a sign-in check, nothing
        collected, nothing kept, one audit row each. Each source is claimed first (its date
        moved), so that several workers never check the same one. Returns how many were
        checked."""
        engine, now = self.parts.engine, self.parts.now()
        checked = 0
        for source in await run_blocking(sources_due, engine, now - every, limit):
            connector = self.connectors.get(source.data_source)
            if connector is None or not await run_blocking(claim_sync, engine, source, now):
                continue
            result = await self.sign_in(source, connector, ())
            outcome = (
                "ok"
                if result.outcome is Outcome.COLLECTED
                else "failing"
                if result.outcome in REFUSED
                else result.outcome.value
            )
            await self.parts.audit.record(
                EventType.ACCOUNT_SOURCE_SYNCED,
                actor="broker",
                flow_ref=account_ref(source.account_id),
                data_source=source.data_source,
                login_hash=source.login_hash,
                outcome=outcome,
            )
            checked += 1
        return checked


def _values(opened: OpenedSecret) -> dict[str, str]:
    try:
        return opened.json_object(TOKEN_MEMBERS)
    except EnvelopeRejected:
        pass
    try:
        return opened.json_object(CREDENTIAL_MEMBERS)
    except EnvelopeRejected:
        opened.wipe()
        raise MaterialUnreadable("the re-sync material is not one this broker wrote") from None


async def sync_forever(sync: SourceSync, every: timedelta) -> None:
    """`serve`'s background job: look for due sources a few times per period."""
    pause = max(60.0, min(every.total_seconds() / 4, 3600.0))
    while True:
        try:
            await sync.sync_due(every)
        except Exception as error:  # the type only: the job must outlive a bad round
            log.error("periodic re-sync failed: %s", type(error).__name__)
        await asyncio.sleep(pause)
