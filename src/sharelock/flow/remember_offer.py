"""The flow's side of the offer to remember a source (docs/accounts.md): after a share
collected with a password, "Remember Banque Sandbox to share in one click next time".

What the offer would keep waits within the session, sealed in Redis (`REMEMBER_OFFER`): the
source's device token when the source gave one, otherwise the credential JWE as received. The
flow marks that an offer is pending (`FlowState.extra["remember_offer"]`), so that flows
without one never ask Redis. The person's "yes" is the account's business
(`sharelock.accounts.remembered` takes the record and keeps its material); a "no", a refusal
or going on to the partner without answering takes the record here, and a device token is
forgotten at the source at once (best effort: the source's own limit ends it otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sharelock.connectors import Connector, RemembersDevice
from sharelock.flow.record_types import RememberOffer
from sharelock.flow.records import REMEMBER_OFFER, Records
from sharelock.flow.state import FlowState

log = logging.getLogger("sharelock.flow")

PENDING = "remember_offer"


class RememberOffers:
    def __init__(self, records: Records, connectors: Mapping[str, Connector]) -> None:
        self.records = records
        self.connectors = connectors

    @staticmethod
    def pending(flow: FlowState) -> bool:
        return bool(flow.extra.get(PENDING))

    def describe(self, flow: FlowState) -> dict[str, Any] | None:
        """What the page says of a pending offer (after approval)."""
        connector = self.connectors.get(flow.data_source or "")
        if not self.pending(flow) or connector is None:
            return None
        return {"data_source": connector.info.id, "name": connector.info.name}

    async def take(self, flow: FlowState) -> RememberOffer | None:
        """The pending offer, taken (GETDEL): answered once, whatever the answer."""
        if not self.pending(flow):
            return None
        return await self.records.take(REMEMBER_OFFER, flow.flow_id)

    async def decline(self, flow: FlowState) -> None:
        """No (said, or meant by refusing or by going on): nothing of the offer stays."""
        offer = await self.take(flow)
        if offer is not None:
            await self.forget(offer)

    async def forget(self, offer: RememberOffer) -> None:
        """Tell the source to forget a device token the broker will not keep."""
        connector = self.connectors.get(offer.data_source)
        if offer.device_token is None or not isinstance(connector, RemembersDevice):
            return
        try:
            await connector.forget(offer.device_token)
        except Exception as error:  # best effort; the type only (it could quote anything)
            log.warning(
                "forgetting a device token at %s failed: %s",
                offer.data_source,
                type(error).__name__,
            )
