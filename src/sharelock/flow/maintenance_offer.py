"""The flow's side of corrective maintenance: after a failure that repairing the connector
could fix, the person is asked whether the broker may keep their credentials (SPEC,
"Retention", 120 days at most; `sharelock.maintenance` keeps them).

Until the answer, the JWE waits as received, sealed in Redis within the session
(`MAINTENANCE_OFFER`). The answer, a retry, a decision or the session's end erases it.
"""

from __future__ import annotations

from typing import Any

from sharelock.audit import EventType
from sharelock.blocking import run_blocking
from sharelock.connectors import CollectionResult, Connector, Outcome
from sharelock.flow.envelopes import CREDENTIAL_MEMBERS, Envelopes
from sharelock.flow.errors import FlowConflict
from sharelock.flow.ports import AsyncAudit
from sharelock.flow.record_types import MaintenanceOffer
from sharelock.flow.records import MAINTENANCE_OFFER, Records
from sharelock.flow.state import FlowState, flow_ref
from sharelock.keys import KeyLayer
from sharelock.maintenance import MaintenanceVault, new_maintenance_id, offers_maintenance

# The outcomes (`FlowState.last_outcome`) after which an offer may be pending.
_MAINTAINABLE = frozenset(outcome.value for outcome in Outcome if offers_maintenance(outcome))


class MaintenanceOffers:
    def __init__(
        self,
        records: Records,
        envelopes: Envelopes,
        keys: KeyLayer,
        audit: AsyncAudit,
        vault: MaintenanceVault | None,
    ) -> None:
        self.records = records
        self.envelopes = envelopes
        self.keys = keys
        self.audit = audit
        # Without a vault, no failure offers to keep the credentials for maintenance.
        self.vault = vault

    async def pending(self, flow: FlowState) -> bool:
        # An offer follows only a failure maintenance could fix, and the flow's transition
        # after it records that outcome: after any other, there is none to look for in Redis.
        if self.vault is None or flow.last_outcome not in _MAINTAINABLE:
            return False
        return await self.records.exists(MAINTENANCE_OFFER, flow.flow_id)

    async def offer(
        self,
        flow: FlowState,
        connector: Connector,
        result: CollectionResult,
        envelope: bytes | None,
    ) -> bool:
        """Keep the JWE for the person's answer, if this failure is one maintenance could fix;
        True if an offer is now pending."""
        if (
            envelope is None
            or self.vault is None
            or flow.login_hash is None
            or not offers_maintenance(result.outcome)
        ):
            return False
        offer = MaintenanceOffer(
            envelope=envelope.decode("ascii", "replace"),
            data_source=connector.info.id,
            login_hash=flow.login_hash,
            outcome=result.outcome.value,
        )
        await self.records.put(MAINTENANCE_OFFER, flow.flow_id, offer, until=flow.expires_at)
        return True

    async def answer(self, flow: FlowState, keep: bool) -> dict[str, Any]:
        """The person's answer. The offer is taken (GETDEL) whatever the answer: no erases it;
        yes opens the JWE through the HSM, seals the credentials again under the token's
        storage key (the JWE's RSA key may be destroyed by rotation long before 120 days),
        wipes the clear copy, writes the audit row, then stores the sealed row in SQL."""
        offer = await self.records.take(MAINTENANCE_OFFER, flow.flow_id)
        vault = self.vault
        if offer is None or vault is None:
            raise FlowConflict("no offer to keep credentials is pending for this flow")
        reference = flow_ref(flow.flow_id)
        common = {
            "client_id": flow.request.client_id,
            "data_source": offer.data_source,
            "login_hash": offer.login_hash,
            "flow_ref": reference,
            "browser_family": flow.browser_family,
            "device_type": flow.device_type,
        }
        if not keep:
            await self.audit.record(
                EventType.MAINTENANCE_CONSENT_REFUSED, outcome="refused", **common
            )
            return {"kept": False}
        maintenance_id = new_maintenance_id()
        opened = await self.envelopes.open(offer.envelope.encode("ascii", "replace"))
        with opened:  # wiped when the block ends, sealed or not
            opened.json_object(CREDENTIAL_MEMBERS).clear()  # the shape a login accepts
            sealed = await self.keys.run_async(
                lambda: vault.seal(
                    maintenance_id,
                    bytes(opened.view()),
                    data_source=offer.data_source,
                    login_hash=offer.login_hash,
                    client_id=flow.request.client_id,
                    flow_ref=reference,
                )
            )
        # Written before the row is stored; if it cannot be, nothing is kept (fail closed).
        await self.audit.record(
            EventType.MAINTENANCE_CONSENT_GIVEN,
            outcome="kept",
            query=f"maintenance_id={maintenance_id}",
            **common,
        )
        kept = await run_blocking(vault.store, sealed)
        return {"kept": True, "expires_at": kept.expires_at.isoformat()}
