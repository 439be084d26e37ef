"""Random handles (flow ids, codes, tokens, request URIs) and the digests stored for them.

Codes, tokens and request URIs are bearer secrets: Redis keys and audit rows hold only their
SHA-256, so a copy of either does not let anyone redeem them.
"""

from __future__ import annotations

import hashlib
import secrets

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"


def new_handle(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def digest(handle: str) -> str:
    return hashlib.sha256(handle.encode("utf-8")).hexdigest()
