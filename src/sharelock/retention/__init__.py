"""Retention enforced: `run_retention` removes what has outlived its limit (SPEC, "Retention").

Public surface: `run_retention`, `RetentionReport`, `enforcement` (who enforces each limit).
"""

from sharelock.retention.run import RetentionReport, enforcement, run_retention

__all__ = ["RetentionReport", "enforcement", "run_retention"]
