"""Remembered sources in a share (docs/accounts.md): the "yes" to the offer made after a
share (the source's re-sync material sealed in the HSM for a new row of the account), the
sources a signed-in person can share from, and the one-click share, whose collection signs in
with the material (`accounts.sync`) instead of typed credentials.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sharelock.accounts.context import AccountParts, SignedIn
from sharelock.accounts.errors import AccountItemNotFound
from sharelock.accounts.holdings import Holdings, full_session
from sharelock.accounts.sources import delete_source, source_of, sources_of
from sharelock.accounts.sync import SourceSync, token_material
from sharelock.audit import EventType
from sharelock.blocking import run_blocking
from sharelock.connectors import CollectionResult
from sharelock.envelope import EnvelopeRejected, OpenedSecret
from sharelock.flow import (
    CREDENTIAL_MEMBERS,
    ConsentService,
    FlowConflict,
    FlowState,
    RememberOffer,
)


class RememberedSources:
    def __init__(
        self,
        parts: AccountParts,
        holdings: Holdings,
        consent: ConsentService,
        sync: SourceSync,
    ) -> None:
        self.parts = parts
        self.holdings = holdings
        self.consent = consent
        self.sync = sync
        self.connectors = sync.connectors

    def __repr__(self) -> str:
        return "RememberedSources()"

    # -- in a share ----------------------------------------------------------------------------

    async def for_flow(self, signed: SignedIn, flow: FlowState) -> list[dict[str, Any]]:
        """The account's sources that can provide this share's data."""
        wanted = set(flow.request.collect_scopes)
        sources = await run_blocking(sources_of, self.parts.engine, signed.account_id)
        listed = []
        for source in sources:
            connector = self.connectors.get(source.data_source)
            if connector is None or not source.has_material:
                continue
            if not wanted <= set(connector.info.scopes):
                continue
            listed.append(
                {
                    "id": source.id,
                    "data_source": source.data_source,
                    "name": connector.info.name,
                    "status": source.status,
                }
            )
        return listed

    async def remember(self, signed: SignedIn, flow: FlowState) -> dict[str, Any]:
        """Yes to the offer: the source's material, sealed in the HSM for a new row of this
        account (replacing the row of the same source and login, if any), audited."""
        full_session(signed)
        offer = await self.consent.remember.take(flow)
        if offer is None:
            raise FlowConflict("no offer to remember a source is pending for this flow")
        engine = self.parts.engine
        before = [
            source
            for source in await run_blocking(sources_of, engine, signed.account_id)
            if source.data_source == offer.data_source and source.login_hash == offer.login_hash
        ]
        with await self._material(offer) as material:
            source_id = await self.holdings.connect_source(
                signed.account_id, offer.data_source, offer.login_hash, bytes(material.view())
            )
        now = self.parts.now()
        try:
            await self.parts.audit_change(
                EventType.ACCOUNT_SOURCE_CONNECTED,
                signed.account_id,
                data_source=offer.data_source,
                login_hash=offer.login_hash,
            )
        except BaseException:
            await run_blocking(delete_source, engine, signed.account_id, source_id, now)
            raise
        for old in before:
            with contextlib.suppress(AccountItemNotFound):
                await run_blocking(delete_source, engine, signed.account_id, old.id, now)
        return {"remembered": True, "source": source_id}

    async def _material(self, offer: RememberOffer) -> OpenedSecret:
        if offer.device_token is not None:
            return OpenedSecret(bytearray(token_material(offer.device_token)))
        if offer.envelope is None:
            raise FlowConflict("the offer holds nothing to remember")
        opened = await self.consent.envelopes.open(offer.envelope.encode("ascii"))
        try:
            opened.json_object(CREDENTIAL_MEMBERS).clear()  # the shape a login accepts
        except EnvelopeRejected:
            opened.wipe()
            raise
        return opened

    async def one_click(self, signed: SignedIn, flow: FlowState, source_id: str) -> dict[str, Any]:
        """Collect this share's data with a remembered source: no password typed (a one-time
        code only if the source asks one); then the review and decision as always."""
        full_session(signed)
        source = await run_blocking(source_of, self.parts.engine, signed.account_id, source_id)
        connector = None if source is None else self.connectors.get(source.data_source)
        if source is None or not source.has_material or connector is None:
            raise AccountItemNotFound("no such source in this account")
        scopes = flow.request.collect_scopes

        async def call() -> CollectionResult:
            return await self.sync.sign_in(source, connector, scopes)

        return await self.consent.submit_remembered(
            flow, source.data_source, source.login_hash, call
        )
