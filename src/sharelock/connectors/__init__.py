"""Connectors: log in to a data source for one person and collect what they agreed to share.

`build_connectors(settings)` gives one `Connector` (see `base.py`) per data source id, each
keeping one connection pool for all its collections until its `aclose`; `DATA_SOURCES` says
what each source is and provides. Collected values are validated by `validation.py` before
anyone sees them.
"""

from __future__ import annotations

from sharelock.connectors.base import (
    CollectionResult,
    Connector,
    ConnectorRegistry,
    DataSourceInfo,
    Outcome,
    RemembersDevice,
)
from sharelock.connectors.portal import PortalConnector
from sharelock.connectors.registry import DATA_SOURCES, build_connectors
from sharelock.connectors.sources import PORTALS, PageSpec, PortalSpec

__all__ = [
    "DATA_SOURCES",
    "PORTALS",
    "CollectionResult",
    "Connector",
    "ConnectorRegistry",
    "DataSourceInfo",
    "Outcome",
    "PageSpec",
    "PortalConnector",
    "PortalSpec",
    "RemembersDevice",
    "build_connectors",
]
