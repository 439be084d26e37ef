"""The generic connector for portals with a login form, an optional one-time code, data pages.

One collection attempt is: fetch the login page (which sets the pre-session cookie and gives a
CSRF token), post the credentials, then either stop at the one-time code page (returning what
is needed to go on as `resume_state`) or read the data pages the requested scopes need,
download the documents they need (same client, cookies and timeouts, read up to the documents'
size limit) and check each one (`sharelock.documents`, on the documents thread), and validate
every value. A document that fails its checks ends the attempt as DOCUMENT_REFUSED, with the
reason as `detail`; nothing of the attempt is kept.

A source that remembers devices (`info.remembers_device`) is asked to, at a login with
`remember=True`: the login form's box is ticked, and the token the first data page shows
(`data-device-token`) comes back as `result.device_token`. If the collection then fails, the
token is revoked at once (nobody would hold it). `resume` signs in with the token instead of the
credentials (the login page's CSRF token and the token, posted to the source's resume path) and
collects like a login; `forget` revokes it. `scopes=()` checks the sign-in and collects nothing.

Each attempt has its own cookie jar, closed when it ends, so one person's session at the
portal never reaches another person's attempt; the credentials live in the call's locals only
and go nowhere but the form post. What attempts do share is the connector's connection pool
(one per data source, made once with its SSL context): making them per attempt cost tens of
milliseconds of CPU per collection, and kept no connection alive.

What can be logged: the data source id, the outcome and its detail code (a document's refusal
reason). Nothing else, ever: not the login, not the password, code or device token, not a
value, not what the portal printed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from sharelock.connectors.base import CollectionResult, DataSourceInfo, Outcome
from sharelock.connectors.browser import (
    Browser,
    Fetched,
    PortalError,
    check_base_url,
    new_transport,
)
from sharelock.connectors.devices import forget_quietly, plausible_token, post_token
from sharelock.connectors.html import Form
from sharelock.connectors.sources import DocumentSpec, PortalSpec
from sharelock.connectors.validation import InvalidValue, validate_collected
from sharelock.documents import (
    DEFAULT_LIMITS,
    DocumentLimits,
    DocumentRefused,
    check_pdf,
    in_documents_thread,
    safe_filename,
)

_log = logging.getLogger(__name__)

MAX_CREDENTIAL_LENGTH = 256
MAX_OTP_LENGTH = 16
RESUME_VERSION = 1
# What portals print in `data-error`, and what it means for the broker.
_ERRORS = {
    "invalid_credentials": Outcome.INVALID_CREDENTIALS,
    "invalid_login": Outcome.INVALID_CREDENTIALS,
    "account_locked": Outcome.ACCOUNT_LOCKED,
    "invalid_otp": Outcome.INVALID_OTP,
    "otp_expired": Outcome.INVALID_OTP,
    "device_token_revoked": Outcome.DEVICE_TOKEN_REVOKED,
}
_OTP_MARKER = "otp"


class PortalConnector:
    """A `Connector` for one portal described by a `PortalSpec`.

    `timeout` bounds each network operation (connect, each read, each write, waiting for a
    pooled connection); `total_timeout` (three times `timeout` unless given) bounds a whole
    attempt, so a source that answers slowly but steadily still cannot hold a collection for
    long.

    Every attempt goes through one connection pool, `transport`: by default one the connector
    makes (`new_transport`) and closes in `aclose`; a transport given by the caller (a test's
    counting or fault-injecting one) stays the caller's to close. Each attempt still has its
    own cookie jar. The pool's connections belong to the event loop that opened them: use a
    connector from one event loop (the broker's), and `aclose` it there when done."""

    def __init__(
        self,
        spec: PortalSpec,
        base_url: str,
        timeout: float,
        *,
        total_timeout: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        document_limits: DocumentLimits = DEFAULT_LIMITS,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        check_base_url(base_url)  # now rather than at the first login
        self.info: DataSourceInfo = spec.info
        self._spec = spec
        self._base_url = base_url
        self._timeout = timeout
        self._total_timeout = total_timeout if total_timeout is not None else 3 * timeout
        self._owns_transport = transport is None
        self._transport = transport if transport is not None else new_transport()
        self._document_limits = document_limits
        self._closed = False

    def __repr__(self) -> str:
        return f"PortalConnector({self.info.id!r})"

    async def aclose(self) -> None:
        """Close the connection pool (if the connector made it); later attempts raise
        `RuntimeError`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_transport:
            await self._transport.aclose()

    async def login(
        self, login: str, password: str, scopes: tuple[str, ...], *, remember: bool = False
    ) -> CollectionResult:
        """Log in and, unless the source asks for a one-time code, collect `scopes` (`()`: check
        the sign-in only). With `remember`, a source that remembers devices is asked to, and
        its device token comes back in `result.device_token` (or from `submit_otp`)."""
        wanted = self._wanted(scopes)
        remember = remember and self.info.remembers_device
        try:
            user = self._spec.normalise_login(login)
        except InvalidValue:
            user = ""
        if not user or not password or max(len(user), len(password)) > MAX_CREDENTIAL_LENGTH:
            return self._done("login", CollectionResult(Outcome.INVALID_CREDENTIALS))
        form_values = {self._spec.login_field: user, self._spec.password_field: password}

        async def step(browser: Browser) -> CollectionResult:
            login_page = await browser.get(browser.url(self._spec.prefix + self._spec.login_path))
            form = login_page.page.form_with("password")
            if form is None or not all(form.has_input(name) for name in form_values):
                raise PortalError("no login form where expected")
            values = dict(form_values)
            box = self._spec.remember_field
            ask = remember and form.has_input(box)
            if ask:
                values[box] = form.inputs[box][1] or "on"  # what a browser sends when ticked
            elif remember:
                _log.warning("device token source=%s: no remember box on the form", self.info.id)
            answer = await self._submit(browser, login_page, form, values)
            return await self._after_submit(browser, answer, wanted, remember=ask)

        return await self._attempt("login", step)

    async def resume(self, device_token: str, scopes: tuple[str, ...]) -> CollectionResult:
        """Sign in with a device token instead of the credentials, then collect `scopes` as a
        login does (`()`: check the sign-in only). DEVICE_TOKEN_REVOKED when the source no
        longer takes the token (or does not remember devices at all)."""
        wanted = self._wanted(scopes)
        if not self.info.remembers_device or not plausible_token(device_token):
            return self._done("resume", CollectionResult(Outcome.DEVICE_TOKEN_REVOKED))

        async def step(browser: Browser) -> CollectionResult:
            path = self._spec.resume_path
            answer = await post_token(browser, self._spec, path, device_token)
            return await self._after_submit(browser, answer, wanted)

        return await self._attempt("resume", step)

    async def forget(self, device_token: str) -> None:
        """Revoke a device token at the source, best effort: a failure is logged (by its type
        only) and swallowed, as the token may be gone already and nothing else can be done."""
        if self._closed:
            raise RuntimeError("the connector is closed")
        if not self.info.remembers_device or not plausible_token(device_token):
            return
        try:
            async with asyncio.timeout(self._total_timeout):
                async with Browser(self._base_url, self._timeout, self._transport) as browser:
                    await forget_quietly(browser, self._spec, device_token)
        except TimeoutError:
            _log.warning("device token forget source=%s failed error=TimeoutError", self.info.id)

    async def submit_otp(
        self, resume_state: bytes, otp: str, scopes: tuple[str, ...]
    ) -> CollectionResult:
        """Finish a login that asked for a one-time code, then collect `scopes`.

        `resume_state` is what `login` (or a previous wrong code) returned; a state that is not
        this connector's raises `ValueError`, as it can only be a caller's mistake."""
        wanted = self._wanted(scopes)
        cookies, action, hidden, remember = self._load_resume(resume_state)
        code = "".join(otp.split())
        if not code or len(code) > MAX_OTP_LENGTH:
            result = CollectionResult(Outcome.INVALID_OTP, resume_state=resume_state)
            return self._done("otp", result)

        async def step(browser: Browser) -> CollectionResult:
            target = browser.resolve(action, browser.url("/"))
            answer = await browser.post(target, {**hidden, self._spec.otp_field: code})
            return await self._after_submit(browser, answer, wanted, remember=remember)

        return await self._attempt("otp", step, cookies)

    # -- steps ---------------------------------------------------------------------------------

    async def _submit(
        self, browser: Browser, fetched: Fetched, form: Form, values: dict[str, str]
    ) -> Fetched:
        if form.method != "post":
            raise PortalError("the form does not post")
        target = browser.resolve(form.action or str(fetched.url), fetched.url)
        return await browser.post(target, {**form.hidden, **values})

    async def _after_submit(
        self, browser: Browser, answer: Fetched, wanted: frozenset[str], *, remember: bool = False
    ) -> CollectionResult:
        """Read what the portal answered to a login, a code or a device token: an error, the
        code page, or a data page (logged in; with `remember`, it shows the device token)."""
        page = answer.page
        if page.error is not None:
            outcome = _ERRORS.get(page.error)
            if outcome is None:
                raise PortalError("the data source showed an unknown error")
            resume = None
            if outcome is Outcome.INVALID_OTP and page.marker == _OTP_MARKER:
                resume = self._otp_state(browser, answer, remember)
            return CollectionResult(outcome, resume_state=resume)
        if answer.status != 200:
            raise PortalError("unexpected status")
        if page.marker == _OTP_MARKER:
            return CollectionResult(
                Outcome.OTP_REQUIRED, resume_state=self._otp_state(browser, answer, remember)
            )
        if page.marker not in {spec.marker for spec in self._spec.pages}:
            raise PortalError("not logged in, and no error shown")
        token = self._handed_token(answer) if remember else None
        try:
            result = await self._collect(browser, answer, wanted)
        except _COLLECT_ERRORS:
            if token is not None:  # minted for a collection that failed: nobody will hold it
                await forget_quietly(browser, self._spec, token)
            raise
        result.device_token = token
        return result

    def _handed_token(self, answer: Fetched) -> str | None:
        token = answer.page.device_token
        if token is None or not plausible_token(token):
            _log.warning("device token source=%s: none handed over", self.info.id)
            return None
        return token

    async def _collect(
        self, browser: Browser, current: Fetched, wanted: frozenset[str]
    ) -> CollectionResult:
        """Read the pages that hold the wanted scopes and validate their values at once, then
        (only if they passed) download and check the wanted documents."""
        documents = [spec for spec in self._spec.documents if spec.scope in wanted]
        kinds = {spec.scope for spec in documents}
        raw: dict[str, dict[str, str]] = {
            s: {} for s in self.info.scopes if s in wanted and s not in kinds
        }
        for spec in self._spec.pages:
            if not spec.scopes() & wanted:
                continue
            if current.page.marker != spec.marker:
                current = await browser.get(browser.url(self._spec.prefix + spec.path))
            if current.status != 200 or current.page.marker != spec.marker:
                raise PortalError("a data page is not where expected")
            for attr, (scope, name) in spec.fields.items():
                if scope not in wanted:
                    continue
                values = current.page.fields.get(attr, [])
                if len(values) != 1:
                    raise PortalError("a data page does not show a field exactly once")
                raw[scope][name] = values[0]
        data = validate_collected(raw)
        for document in documents:
            current, fields = await self._document(browser, current, document)
            data |= validate_collected({document.scope: fields})
        return CollectionResult(Outcome.COLLECTED, data=data)

    async def _document(
        self, browser: Browser, current: Fetched, spec: DocumentSpec
    ) -> tuple[Fetched, dict[str, str]]:
        """Download the document its page links to, check it, and give its scope's fields."""
        if current.page.marker != spec.marker:
            current = await browser.get(browser.url(self._spec.prefix + spec.path))
        if current.status != 200 or current.page.marker != spec.marker:
            raise PortalError("the documents page is not where expected")
        links = current.page.documents.get(spec.link, [])
        if len(links) != 1:
            raise PortalError("the documents page does not link the document exactly once")
        limits = self._document_limits
        file = await browser.download(browser.resolve(links[0], current.url), limits.max_bytes)
        checked = await in_documents_thread(check_pdf, file.content, file.content_type, limits)
        return current, checked.fields(safe_filename(file.filename, spec.filename))

    # -- resume state --------------------------------------------------------------------------

    def _otp_state(self, browser: Browser, answer: Fetched, remember: bool) -> bytes:
        form = answer.page.form_having(self._spec.otp_field)
        if form is None or form.method != "post":
            raise PortalError("no one-time code form where expected")
        target = browser.resolve(form.action or str(answer.url), answer.url)
        state = {
            "v": RESUME_VERSION,
            "source": self.info.id,
            "cookies": browser.cookies(),
            "action": target.raw_path.decode("ascii"),
            "hidden": form.hidden,
        }
        if remember:  # the login asked for a device token: the code's answer will show it
            state["remember"] = True
        return json.dumps(state, separators=(",", ":")).encode()

    def _load_resume(
        self, resume_state: bytes
    ) -> tuple[list[tuple[str, str, str, str]], str, dict[str, str], bool]:
        try:
            state: Any = json.loads(resume_state)
            ok = (
                isinstance(state, dict)
                and state.get("v") == RESUME_VERSION
                and state.get("source") == self.info.id
                and isinstance(state.get("action"), str)
                and state["action"].startswith("/")
                and not state["action"].startswith("//")
                and isinstance(state.get("hidden"), dict)
                and all(isinstance(v, str) for v in state["hidden"].values())
                and isinstance(state.get("remember", False), bool)
                and isinstance(state.get("cookies"), list)
                and all(
                    isinstance(c, list) and len(c) == 4 and all(isinstance(p, str) for p in c)
                    for c in state["cookies"]
                )
            )
        except (ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            raise ValueError("resume state not from this connector")
        cookies = [(c[0], c[1], c[2], c[3]) for c in state["cookies"]]
        return cookies, state["action"], dict(state["hidden"]), state.get("remember", False)

    # -- plumbing ------------------------------------------------------------------------------

    def _wanted(self, scopes: tuple[str, ...]) -> frozenset[str]:
        """The scopes to collect; none is a check that the sign-in works."""
        wanted = frozenset(scopes)
        if not wanted <= set(self.info.scopes):
            raise ValueError(f"{self.info.id} provides only {', '.join(self.info.scopes)}")
        return wanted

    async def _attempt(
        self,
        step_name: str,
        step: Callable[[Browser], Awaitable[CollectionResult]],
        cookies: list[tuple[str, str, str, str]] | None = None,
    ) -> CollectionResult:
        """Run one attempt in a fresh browser (its own cookie jar, the connector's pool),
        turning every failure into a typed outcome."""
        if self._closed:
            # Not an outcome: only a caller that closed the connector can get here.
            raise RuntimeError("the connector is closed")
        try:
            async with asyncio.timeout(self._total_timeout):
                async with Browser(
                    self._base_url, self._timeout, self._transport, cookies
                ) as browser:
                    result = await step(browser)
        except (httpx.TimeoutException, TimeoutError):
            result = CollectionResult(Outcome.SOURCE_TIMEOUT)
        except (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict, PortalError):
            result = CollectionResult(Outcome.SOURCE_UNAVAILABLE)
        except InvalidValue:
            result = CollectionResult(Outcome.INVALID_DATA)
        except DocumentRefused as refused:
            result = CollectionResult(Outcome.DOCUMENT_REFUSED, detail=refused.reason.value)
        return self._done(step_name, result)

    def _done(self, step_name: str, result: CollectionResult) -> CollectionResult:
        _log.info(
            "collection source=%s step=%s outcome=%s detail=%s",
            self.info.id,
            step_name,
            result.outcome,
            result.detail or "-",
        )
        return result


# What a collection can fail with, besides the attempt's timeout: a device token minted for it
# is revoked before the error goes on to `_attempt`.
_COLLECT_ERRORS = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.CookieConflict,
    PortalError,
    InvalidValue,
    DocumentRefused,
)
