"""What the consent API shows of a flow: its description (who asks what, from which sources,
until when) and the collected data for review. Read-only.

A document (`sharelock.scopes.DOCUMENT_SCOPES`) is reviewed as images: its `document` field
carries, instead of the file, the address of each page's PNG (`document_page`), drawn on
demand from the sealed copy in Redis, in memory only, while the flow awaits the decision."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sharelock.clock import Clock
from sharelock.config import Settings
from sharelock.connectors import Connector
from sharelock.documents import (
    DEFAULT_LIMITS,
    DocumentLimits,
    DocumentRefused,
    RenderFailed,
    document_bytes,
    in_documents_thread,
    render_page,
)
from sharelock.errors import ServiceUnavailable
from sharelock.flow import identity_steps
from sharelock.flow.checking import questions, reviewed
from sharelock.flow.errors import FlowConflict, FlowError, FlowNotFound
from sharelock.flow.maintenance_offer import MaintenanceOffers
from sharelock.flow.ports import AsyncPartners, eligible_sources, partner_view
from sharelock.flow.records import COLLECTED, Records
from sharelock.flow.state import FlowState, Status
from sharelock.scopes import DOCUMENT_SCOPES, FIELD_LABELS, OPTIONAL_FIELDS, SCOPE_FIELDS


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
        document_limits: DocumentLimits = DEFAULT_LIMITS,
    ) -> None:
        self.settings = settings
        self.records = records
        self.partners = partners
        self.connectors = connectors
        self.offers = offers
        self.attempts_left = attempts_left
        self.clock = clock
        self.document_limits = document_limits

    async def describe(self, flow: FlowState) -> dict[str, Any]:
        partner = await self.partners.get(flow.request.client_id)
        if partner is None:
            raise FlowNotFound("the partner of this flow is no longer registered")
        scopes = flow.request.scopes
        return {
            "checks": questions(flow.request),
            # What identity verification asks (the document types), or None.
            "identity_verification": flow.request.identity_verification,
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
            "identity_verification": identity_steps.reviewed(flow.request, collected.identity),
            "fields": [
                self._field(flow, scope, name, value, values)
                for scope, values in collected.data.items()
                for name, value in values.items()
            ],
        }

    def _field(
        self, flow: FlowState, scope: str, name: str, value: str, values: Mapping[str, str]
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "scope": scope,
            "field": name,
            "label": FIELD_LABELS[name],
            "value": value,
            "optional": (scope, name) in OPTIONAL_FIELDS,
        }
        if scope in DOCUMENT_SCOPES and name == "document":
            # The page images, not the file: the review needs no PDF reader, and the file
            # (up to 2 MiB) does not travel to the browser at all.
            del item["value"]
            base = f"/api/flows/{flow.flow_id}/documents/{scope}"
            item["pages"] = [f"{base}/{page}.png" for page in range(1, int(values["pages"]) + 1)]
        return item

    async def document_page(self, flow: FlowState, scope: str, page: int) -> bytes:
        """Page `page` (from 1) of the collected document of `scope`, as PNG bytes, drawn now
        from the sealed copy; only while the flow awaits the person's decision."""
        if flow.status is not Status.COLLECTED:
            raise FlowConflict(f"no document to review while the flow is {flow.status.value}")
        collected = await self.records.get(COLLECTED, flow.flow_id)
        if collected is None:
            raise FlowNotFound("the collected data has expired")
        values = collected.data.get(scope)
        if scope not in DOCUMENT_SCOPES or values is None:
            raise FlowError("no such document in this share")
        if not 1 <= page <= int(values["pages"]):
            raise FlowError("no such page in this document")
        try:
            content = document_bytes(values)
            return await in_documents_thread(render_page, content, page, self.document_limits)
        except (DocumentRefused, RenderFailed, ValueError):
            # Checked at collection, so this is the drawing failing (in time): fixed text.
            raise ServiceUnavailable("the document page could not be drawn; try again") from None
