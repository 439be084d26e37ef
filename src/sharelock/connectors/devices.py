"""Device tokens at a portal: signing in with one, revoking one, what one may look like.

A portal that remembers devices (`DataSourceInfo.remembers_device`) takes the token in a form
posted to its resume path (sign in) or forget path (revoke), with the login page's hidden
fields (its CSRF token, bound to the pre-session cookie the page sets). Nothing here logs or
raises anything but the source id and fixed text: the token is a credential.
"""

from __future__ import annotations

import logging

import httpx

from sharelock.connectors.browser import Browser, Fetched, PortalError
from sharelock.connectors.sources import PortalSpec

_log = logging.getLogger(__name__)

MAX_TOKEN_LENGTH = 256
# What revoking a token can fail with: logged by type, swallowed.
FORGET_ERRORS = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.CookieConflict,
    PortalError,
    TimeoutError,
)


def plausible_token(token: str) -> bool:
    """A device token worth sending: bounded, printable ASCII, no spaces (a form value)."""
    return (
        0 < len(token) <= MAX_TOKEN_LENGTH
        and token.isascii()
        and token.isprintable()
        and " " not in token
    )


async def post_token(browser: Browser, spec: PortalSpec, path: str, token: str) -> Fetched:
    """Post `token` to the portal's `path` (`spec.resume_path` or `spec.forget_path`) the way
    its own pages would: with the login page's hidden fields."""
    login_page = await browser.get(browser.url(spec.prefix + spec.login_path))
    form = login_page.page.form_with("password")
    if form is None:
        raise PortalError("no login form where expected")
    target = browser.url(spec.prefix + path)
    return await browser.post(target, {**form.hidden, spec.device_token_field: token})


async def forget_at(browser: Browser, spec: PortalSpec, token: str) -> None:
    """Revoke `token` at the portal; `PortalError` if it did not say so."""
    answer = await post_token(browser, spec, spec.forget_path, token)
    if answer.status != 200 or answer.page.error is not None:
        raise PortalError("the data source did not forget the device")


async def forget_quietly(browser: Browser, spec: PortalSpec, token: str) -> bool:
    """`forget_at`, a failure logged by its type only and swallowed; whether it worked."""
    try:
        await forget_at(browser, spec, token)
    except FORGET_ERRORS as error:
        _log.warning(
            "device token forget source=%s failed error=%s", spec.info.id, type(error).__name__
        )
        return False
    _log.info("device token forget source=%s done", spec.info.id)
    return True
