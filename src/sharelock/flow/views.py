"""What the consent API shows of a flow: its description (who asks what, from which sources,
until when) and the collected data for review. Read-only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sharelock.clock import Clock
from sharelock.config import Settings
from sharelock.connectors import Connector
from sharelock.flow.checking import questions, reviewed
from sharelock.flow.errors import FlowConflict, FlowNotFound
from sharelock.flow.maintenance_offer import MaintenanceOffers
from sharelock.flow.ports import AsyncPartners, eligible_sources, partner_view
from sharelock.flow.records import COLLECTED, Records
from sharelock.flow.state import FlowState, Status
from sharelock.scopes import FIELD_LABELS, OPTIONAL_FIELDS, SCOPE_FIELDS


class Views:
    def __init__(
        self,
        settings: Settings,
        records: Records,
        partners: AsyncPartners,
        connectors: Mapping[str, Connector],
        offers: MaintenanceOffers,
        attempts_left: Callable[[FlowState], Awaitable[int]],
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.records = records
        self.partners = partners
        self.connectors = connectors
        self.offers = offers
        self.attempts_left = attempts_left
        self.clock = clock

    async def describe(self, flow: FlowState) -> dict[str, Any]:
        partner = await self.partners.get(flow.request.client_id)
        if partner is None:
            raise FlowNotFound("the partner of this flow is no longer registered")
        scopes = flow.request.scopes
        return {
            "checks": questions(flow.request),
            "flow_id": flow.flow_id,
            "status": flow.status.value,
            "partner": dict(partner_view(partner)),
            "scopes": list(scopes),
            "fields": [
                {
                    "scope": scope,
                    "field": name,
                    "label": FIELD_LABELS[name],
                    "optional": (scope, name) in OPTIONAL_FIELDS,
                }
                for scope in scopes
                for name in SCOPE_FIELDS[scope]
            ],
            "data_sources": eligible_sources(self.connectors, flow.request.collect_scopes),
            "data_source": flow.data_source,
            "last_outcome": flow.last_outcome,
            "maintenance_offer": await self.offers.pending(flow),
            # Wrong passwords or codes this share may still try (`Settings.limits`).
            "attempts_left": await self.attempts_left(flow),
            "created_at": datetime.fromtimestamp(flow.created_at, UTC).isoformat(),
            "expires_at": flow.expires.isoformat(),
            "expires_in": max(0, int(flow.expires_at - self.clock.now())),
            "retention": {
                name: int(value.total_seconds())
                for name, value in self.settings.retention.model_dump().items()
            },
        }

    async def review(self, flow: FlowState) -> dict[str, Any]:
        if flow.status is not Status.COLLECTED:
            raise FlowConflict(f"no data to review while the flow is {flow.status.value}")
        collected = await self.records.get(COLLECTED, flow.flow_id)
        if collected is None:
            raise FlowNotFound("the collected data has expired")
        return {
            "data_source": flow.data_source,
            "checks": reviewed(flow.request, collected.checks),
            "fields": [
                {
                    "scope": scope,
                    "field": name,
                    "label": FIELD_LABELS[name],
                    "value": value,
                    "optional": (scope, name) in OPTIONAL_FIELDS,
                }
                for scope, values in collected.data.items()
                for name, value in values.items()
            ],
        }
