"""Sandbox data sources: fictitious portals (bank, telecom, energy, tax office) over HTTP.

They behave like the real sites the connectors will meet (CSRF-protected login form, session
cookie, one-time code, locked accounts, slow or failing back ends) so partners can try every
path of the broker and the tests can exercise the connectors without any mock. Test users are
documented in docs/sandbox.md.
"""

from __future__ import annotations

from sharelock.sandbox.app import DEFAULT_SLOW_SECONDS, create_sandbox_app, run_sandbox
from sharelock.sandbox.sources import OTP_CODE, SOURCES, Behaviour, SandboxSource
from sharelock.sandbox.state import Mode

__all__ = [
    "DEFAULT_SLOW_SECONDS",
    "OTP_CODE",
    "SOURCES",
    "Behaviour",
    "Mode",
    "SandboxSource",
    "create_sandbox_app",
    "run_sandbox",
]
