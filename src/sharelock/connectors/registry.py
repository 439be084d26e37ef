"""Which connectors the broker has, built from the settings.

Today these are the sandbox portals; a real source is added by writing its `PortalSpec` (or a
connector of its own) and listing it here.
"""

from __future__ import annotations

import httpx

from sharelock.config import Settings
from sharelock.connectors.base import Connector, DataSourceInfo
from sharelock.connectors.portal import PortalConnector
from sharelock.connectors.sources import PORTALS

DATA_SOURCES: tuple[DataSourceInfo, ...] = tuple(spec.info for spec in PORTALS.values())
"""What every data source is and which scopes it provides, for the consent screen and
discovery, without building any connector."""


def build_connectors(
    settings: Settings,
    base_url: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Connector]:
    """One connector per data source id, each with its own connection pool; close them with
    `aclose`. `base_url` overrides `Settings.sandbox_url` (tests serve the sandbox on a free
    port); `Settings.connector_timeout` bounds each operation.

    `transport`, for tests, is used by every connector instead of their own pools (to count
    requests or inject faults); it stays the caller's to close."""
    url = base_url or settings.sandbox_url
    return {
        source_id: PortalConnector(spec, url, settings.connector_timeout, transport=transport)
        for source_id, spec in PORTALS.items()
    }
