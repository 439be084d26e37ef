"""HTTP layer: thin FastAPI routes over the broker's packages.

Public surface: `create_app` (the ASGI application, built from `Settings`).
"""

from sharelock.web.app import create_app

__all__ = ["create_app"]
