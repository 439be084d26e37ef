"""SQL storage: one engine factory, the tables, and their Alembic migrations.

`create_engine_for(settings)` gives a synchronous engine (SQLite file by default, PostgreSQL
through psycopg 3); `migrate(engine)` brings the schema to the current revision. The registry
and the audit trail take that engine; nothing else in Sharelock talks SQL.
"""

from sharelock.db.engine import (
    WRITE_LOCK,
    create_engine_for,
    describe_failure,
    describe_url,
    normalise_url,
)
from sharelock.db.errors import DatabaseError, DatabaseUnavailable, database_errors
from sharelock.db.models import (
    ACCOUNT_CONSENT_PURPOSES,
    ACCOUNT_SOURCE_STATUSES,
    BASIC_PROFILE,
    DELIVERY_FORMATS,
    FAPI2_PROFILE,
    GENESIS_HASH,
    PROFILES,
    RIGHTS_REQUEST_KINDS,
    RIGHTS_REQUEST_STATUSES,
    ROLES,
    AccountConsentRow,
    AccountPasskeyRow,
    AccountRow,
    AccountSourceRow,
    AuditChainHead,
    AuditCheckpointRow,
    AuditEventRow,
    AuditorRow,
    Base,
    MaintenanceCredentialsRow,
    PartnerRow,
    RightsRequestRow,
)
from sharelock.db.schema import current_revision, head_revision, migrate

__all__ = [
    "ACCOUNT_CONSENT_PURPOSES",
    "ACCOUNT_SOURCE_STATUSES",
    "BASIC_PROFILE",
    "DELIVERY_FORMATS",
    "FAPI2_PROFILE",
    "GENESIS_HASH",
    "PROFILES",
    "RIGHTS_REQUEST_KINDS",
    "RIGHTS_REQUEST_STATUSES",
    "ROLES",
    "WRITE_LOCK",
    "AccountConsentRow",
    "AccountPasskeyRow",
    "AccountRow",
    "AccountSourceRow",
    "AuditChainHead",
    "AuditCheckpointRow",
    "AuditEventRow",
    "AuditorRow",
    "Base",
    "DatabaseError",
    "DatabaseUnavailable",
    "MaintenanceCredentialsRow",
    "PartnerRow",
    "RightsRequestRow",
    "create_engine_for",
    "current_revision",
    "database_errors",
    "describe_failure",
    "describe_url",
    "head_revision",
    "migrate",
    "normalise_url",
]
