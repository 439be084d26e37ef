"""One retention run.

Every limit of `Retention` (config.py) is enforced somewhere; `enforcement()` says where, and
`run_retention` does the parts that need a sweep:
- the credentials kept for corrective maintenance (`Retention.maintenance_credentials`, 120
  days, only with the person's consent): rows past the expiry set when they were kept are
  deleted first, on their own, so that no failure of the audit part keeps them longer;
- the optional accounts unused for `Retention.account` (13 months), deleted with everything
  they hold (`sharelock.accounts.purge_unused_accounts`: each deletion audited first);
- the pseudonymised audit trace, kept `Retention.audit_trace` (13 months). Rows older than
  that are deleted and a checkpoint signed by the HSM records which ones, in the same
  transaction, so that verification tells this purge from tampering; if the HSM cannot sign,
  nothing is deleted.
Running it again at once deletes nothing and signs a new checkpoint of the unchanged chain: it
is idempotent.

The other limits are TTLs set when the value is written (Redis expires it by itself), or the
life of a function call (credentials in clear); the report lists them so an operator sees
every limit in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from sharelock.accounts import purge_unused_accounts
from sharelock.audit import AuditTrail, Checkpoint, Checkpointer, Signer
from sharelock.config import Retention
from sharelock.errors import ConfigError
from sharelock.maintenance import purge_expired

# Where each limit of `Retention` is enforced, besides this run.
_ENFORCED_BY: dict[str, str] = {
    "session": "Redis expiry set when the flow is created (never extended)",
    "authorization_code": "Redis expiry; deleted on first use",
    "access_token": "Redis expiry; deleted on first use",
    "pushed_request": "Redis expiry; deleted on first use",
    "identity_data": "Redis expiry set when the data is kept",
    "audit_trace": "sharelock retention run (rows deleted, signed checkpoint)",
    "maintenance_credentials": (
        "only with the person's yes after a failed collection, sealed in the HSM; expiry set "
        "when kept, rows deleted by sharelock retention run (and sharelock maintenance purge)"
    ),
    "account": (
        "sharelock retention run: accounts unused since then deleted with everything they hold "
        "(audited first)"
    ),
    "account_session": "Redis expiry set at sign-in (never extended)",
}


def enforcement(retention: Retention) -> list[dict[str, Any]]:
    """Every retention limit: its name, description, length and what enforces it."""
    fields = type(retention).model_fields
    return [
        {
            "name": name,
            "description": fields[name].description or name,
            "limit_seconds": int(getattr(retention, name).total_seconds()),
            "enforced_by": _ENFORCED_BY.get(name, "not enforced: add it to _ENFORCED_BY"),
        }
        for name in fields
    ]


@dataclass(frozen=True, slots=True)
class RetentionReport:
    ran_at: datetime
    audit_cutoff: datetime
    audit_rows_purged: int
    purged_from_id: int | None
    purged_through_id: int | None
    checkpoint: Checkpoint
    limits: list[dict[str, Any]]
    maintenance_rows_purged: int = 0
    accounts_purged: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ran_at": self.ran_at.isoformat(),
            "audit_trace": {
                "cutoff": self.audit_cutoff.isoformat(),
                "rows_purged": self.audit_rows_purged,
                "purged_from_id": self.purged_from_id,
                "purged_through_id": self.purged_through_id,
            },
            "maintenance_credentials": {"rows_purged": self.maintenance_rows_purged},
            "accounts": {"unused_deleted": self.accounts_purged},
            "checkpoint": {
                "id": self.checkpoint.id,
                "last_id": self.checkpoint.last_id,
                "anchor_id": self.checkpoint.anchor_id,
            },
            "limits": self.limits,
        }


def run_retention(
    engine: Engine,
    signer: Signer,
    *,
    retention: Retention,
    issuer: str,
    now: datetime | None = None,
) -> RetentionReport:
    """Purge the maintenance credentials past their expiry and the accounts unused for too
    long, then the audit rows older than `retention.audit_trace`, and sign a checkpoint."""
    if retention.audit_trace <= timedelta(0):
        raise ConfigError("SHARELOCK_RETENTION__AUDIT_TRACE: must be a positive duration")
    now = now or datetime.now(UTC)
    maintenance_purged = purge_expired(engine, now)
    accounts_purged = purge_unused_accounts(engine, AuditTrail(engine), retention.account, now)
    cutoff = now - retention.audit_trace
    checkpoint, purged = Checkpointer(engine, signer, issuer).purge(cutoff)
    return RetentionReport(
        ran_at=now,
        audit_cutoff=cutoff,
        audit_rows_purged=0 if purged is None else purged.rows,
        purged_from_id=None if purged is None else purged.from_id,
        purged_through_id=None if purged is None else purged.through_id,
        checkpoint=checkpoint,
        limits=enforcement(retention),
        maintenance_rows_purged=maintenance_purged,
        accounts_purged=accounts_purged,
    )
