"""Corrective maintenance: credentials kept, with the person's consent after a failed
collection, sealed under an HSM key for `Retention.maintenance_credentials` (120 days) at most.

Public surface: `MaintenanceVault` (seal, store, list, reveal, delete, purge); `list_kept`,
`get_kept`, `delete_kept`, `delete_for_login_hash` and `purge_expired`, which need no key
(listing, the person's erasure, retention);
`offers_maintenance` / `MAINTAINABLE` (which failures qualify); `KeptCredentials`; the errors.
"""

from sharelock.maintenance.vault import (
    ID_PATTERN,
    MAINTAINABLE,
    KeptCredentials,
    MaintenanceError,
    MaintenanceExpired,
    MaintenanceNotFound,
    MaintenanceVault,
    SealedCredentials,
    additional_data,
    delete_for_login_hash,
    delete_kept,
    get_kept,
    is_maintenance_id,
    list_kept,
    new_maintenance_id,
    offers_maintenance,
    purge_expired,
)

__all__ = [
    "ID_PATTERN",
    "MAINTAINABLE",
    "KeptCredentials",
    "MaintenanceError",
    "MaintenanceExpired",
    "MaintenanceNotFound",
    "MaintenanceVault",
    "SealedCredentials",
    "additional_data",
    "delete_for_login_hash",
    "delete_kept",
    "get_kept",
    "is_maintenance_id",
    "list_kept",
    "new_maintenance_id",
    "offers_maintenance",
    "purge_expired",
]
