"""Retention enforced: `run_retention` removes what has outlived its limit (SPEC, "Retention").

Public surface: `run_retention`, `RetentionReport`, `enforcement` (who enforces each limit),
and `retention_forever` (the periodic run in the web app).
"""

from sharelock.retention.periodic import retention_forever
from sharelock.retention.run import RetentionReport, enforcement, run_retention

__all__ = ["RetentionReport", "enforcement", "retention_forever", "run_retention"]
