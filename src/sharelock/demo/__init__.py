"""The embedded demo: everything on one machine, plus a small partner site to start a share.

Public surface: `prepare` (keys, schema and the demo partner, before the servers start) and
`run_demo` (the broker, the sandbox and the partner site, optionally one headless share).
"""

from sharelock.demo.run import prepare, run_demo

__all__ = ["prepare", "run_demo"]
