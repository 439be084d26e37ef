"""The browser session cookie that binds a person's browser to their flows.

`__Host-` prefixed and Secure when the issuer is https; on plain-http loopback (the demo and
tests) browsers refuse Secure cookies, so the cookie drops the prefix and the flag there only.
"""

from __future__ import annotations

from fastapi import Request, Response

from sharelock.config import Settings

SECURE_NAME = "__Host-sl_session"
LOOPBACK_NAME = "sl_session"


def cookie_name(settings: Settings) -> str:
    return SECURE_NAME if settings.issuer.startswith("https://") else LOOPBACK_NAME


def read_session(request: Request) -> str | None:
    value = request.cookies.get(SECURE_NAME) or request.cookies.get(LOOPBACK_NAME)
    if value is None or not 20 <= len(value) <= 128:
        return None
    return value


def set_session(response: Response, settings: Settings, secret: str) -> None:
    secure = settings.issuer.startswith("https://")
    response.set_cookie(
        cookie_name(settings),
        secret,
        max_age=int(settings.retention.session.total_seconds()),
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
