"""The cookies that bind a person's browser to their flows: one per flow.

Session fixation is what this module exists to make impossible. The broker never adopts a
session value it did not issue for that very flow: `/authorize` draws a fresh secret for each
new flow (`ConsentService.start`) and sets it in a cookie named after the flow, so a value an
attacker planted beforehand (from another port or a sibling subdomain, which are same-site
with the broker) binds nothing, and the attacker cannot know the flow's secret. One cookie per
flow, not one per browser, is what lets several flows run in parallel tabs: a new flow never
replaces the secret of another one.

Under https the cookie is `__Host-` prefixed and Secure, and only that name is read: a
`__Host-` cookie can only be set by the broker's own origin, over https, for path `/`, so a
sibling subdomain or a plain-http origin cannot toss one in. On plain-http loopback (the demo
and the tests) browsers refuse Secure cookies, so the prefix and the flag are dropped there
only. Each cookie lives no longer than its flow (its Max-Age is the flow's remaining life; it
is kept after the decision so that a reload still shows that flow's outcome).
"""

from __future__ import annotations

import re

from fastapi import Request, Response

from sharelock.config import Settings

SECURE_PREFIX = "__Host-sl_flow_"
LOOPBACK_PREFIX = "sl_flow_"
# Flow ids are `new_handle(24)`: 32 URL-safe base64 characters, all valid in a cookie name.
_FLOW_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SECRET_LENGTH = range(20, 129)


def secure_cookies(settings: Settings) -> bool:
    """Cookies marked Secure (and `__Host-` named) when the broker is served over https."""
    return settings.issuer.startswith("https://")


def cookie_name(settings: Settings, flow_id: str) -> str:
    if not _FLOW_ID.fullmatch(flow_id):
        raise ValueError("not a flow id")
    return (SECURE_PREFIX if secure_cookies(settings) else LOOPBACK_PREFIX) + flow_id


def read_session(request: Request, settings: Settings, flow_id: str) -> str | None:
    """The secret this browser holds for this flow, from the one cookie name the issuer's
    scheme allows; None if there is none (or the flow id cannot be a flow's)."""
    if not _FLOW_ID.fullmatch(flow_id):
        return None
    value = request.cookies.get(cookie_name(settings, flow_id))
    if value is None or len(value) not in _SECRET_LENGTH:
        return None
    return value


def set_session(
    response: Response, settings: Settings, flow_id: str, secret: str, max_age: int
) -> None:
    """Bind this browser to a new flow, for at most the flow's remaining life."""
    response.set_cookie(
        cookie_name(settings, flow_id),
        secret,
        max_age=max(1, max_age),
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="lax",
    )
