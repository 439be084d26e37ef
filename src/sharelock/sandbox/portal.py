"""One sandbox portal: login form, one-time code step, data pages, behaving like a real site.

The flow a connector has to get through is the usual one:

1. `GET /{key}/login` sets a pre-session cookie and prints a form whose hidden `csrf_token` is
   bound to that cookie.
2. `POST /{key}/login` without the right token answers 400. With it, a wrong password or an
   unknown login prints the form again with "Invalid credentials."; a locked account prints
   "Account locked."; a right password either sets the HttpOnly session cookie and redirects
   (303) to the first data page, or sets a pending cookie and redirects to `/{key}/otp`.
3. `POST /{key}/otp` takes the code (`123456`); a wrong one prints "Invalid code." and, after
   three, the pending login is dropped.
4. The data pages print the values inside elements marked `data-field="…"`.
5. A portal that issues documents has a "Documents" page (`/{key}/documents`) whose links carry
   `data-document="…"`; each file (`/{key}/documents/{filename}`) is a PDF made for the person
   logged in (`sharelock.sandbox.documents`), served as `application/pdf` behind the same
   session cookie. The `hostile-*` accounts get a hostile file instead, `heavy` a 1.9 MB scan
   (`sharelock.sandbox.hostile`), the `broken` ones a truncated document.
6. A portal that remembers devices (bank, telecom) has a "Remember this device" box
   (`remember_device=1`) on its login form. A login that ticked it (straight in, or once the
   code is right) mints a device token, valid 90 days, shown once in `data-device-token` on
   the first data page. `POST /{key}/resume` (the login form's `csrf_token`, `device_token`)
   opens a session with it, no password or code; an unknown, expired or revoked token prints
   the login page with `data-error="device_token_revoked"`. `POST /{key}/resume/forget`
   revokes one (idempotent). The telecom operator revokes a token at its first resume.

Every page says what it is in `<body data-page="…">` and errors in `data-error="…"`, the stable
hooks a scraper relies on.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from sharelock.sandbox.hostile import document_variant
from sharelock.sandbox.people import Person
from sharelock.sandbox.sources import (
    OTP_CODE,
    Account,
    Behaviour,
    DocumentView,
    PageView,
    SandboxSource,
)
from sharelock.sandbox.state import (
    MAX_OTP_ATTEMPTS,
    SESSION_TTL_S,
    Mode,
    Pending,
    SandboxState,
    Session,
    new_id,
)
from sharelock.sandbox.web import clear_cookie, page, pause, read_form, redirect, set_cookie

_GARBAGE = "<html><body>\x00%PDF-1.7 ¤¤ 0xDEADBEEF <<<< maintenance >>>>"


def portal_router(source: SandboxSource, state: SandboxState) -> APIRouter:
    """The routes of one portal, under `/{source.key}`."""
    router = APIRouter(prefix=f"/{source.key}", include_in_schema=False)
    path = f"/{source.key}"
    pre_cookie, otp_cookie, session_cookie = (f"{source.key}_{n}" for n in ("pre", "otp", "sid"))
    first_page = f"{path}/{source.pages[0].slug}"

    def message(heading: str, text: str, error: str, status: int = 200) -> HTMLResponse:
        return page(
            "message.html",
            status=status,
            source=source,
            page="error",
            heading=heading,
            error=error,
            message=text,
        )

    def unavailable() -> HTMLResponse:
        text = "The service is temporarily unavailable. Please try again later."
        return message("Service unavailable", text, "unavailable", 503)

    def bad_request() -> HTMLResponse:
        return message("Bad request", "Invalid request: missing or wrong CSRF token.", "csrf", 400)

    def expired(text: str = "Your sign-in has expired. Please sign in again.") -> HTMLResponse:
        return message("Sign-in", text, "otp_expired")

    async def gate(request: Request, *, data_page: bool = False) -> Response | None:
        """Apply the source's mode (control endpoint) before the page itself."""
        mode = state.mode(source.key)
        if mode is Mode.DOWN:
            return unavailable()
        if mode is Mode.SLOW and not await pause(request, state.slow_seconds):
            return unavailable()
        if mode is Mode.GARBAGE and data_page:
            return HTMLResponse(_GARBAGE)
        return None

    def login_form(pre: str, error: str | None = None, text: str | None = None) -> HTMLResponse:
        return page(
            "login.html",
            source=source,
            page="login",
            csrf_token=state.csrf_token("login", pre),
            error=error,
            message=text,
        )

    def otp_form(pending_id: str, error: str | None = None) -> HTMLResponse:
        return page(
            "otp.html",
            source=source,
            page="otp",
            csrf_token=state.csrf_token("otp", pending_id),
            error=error,
            message="Invalid code." if error else None,
        )

    def open_session(account: Account, *, remember: bool = False) -> Response:
        reveal = state.devices.mint(source.key, account.login) if remember else None
        session = Session(source.key, account.login, time.monotonic(), reveal=reveal)
        session_id = state.sessions.put(session)
        response = redirect(first_page)
        set_cookie(response, session_cookie, session_id, path, SESSION_TTL_S)
        return response

    @router.get("/")
    async def home() -> Response:
        return redirect(f"{path}/login")

    @router.get("/login")
    async def login_page(request: Request) -> Response:
        if (blocked := await gate(request)) is not None:
            return blocked
        pre = request.cookies.get(pre_cookie)
        if pre and len(pre) <= 64:
            return login_form(pre)
        pre = new_id()
        response = login_form(pre)
        set_cookie(response, pre_cookie, pre, path, SESSION_TTL_S)
        return response

    async def posted_with_login_csrf(request: Request) -> tuple[str, dict[str, str]] | Response:
        """A form posted with the login page's CSRF token (the login itself, a device's resume
        or forget), if the source is up and the token is bound to the pre-session cookie: the
        cookie and the form; else the answer to give."""
        form = await read_form(request)
        if (blocked := await gate(request)) is not None:
            return blocked
        pre = request.cookies.get(pre_cookie)
        if form is None or not state.csrf_ok("login", pre, form.get("csrf_token")):
            return bad_request()
        assert pre is not None  # csrf_ok is False without it
        return pre, form

    @router.post("/login")
    async def login_submit(request: Request) -> Response:
        checked = await posted_with_login_csrf(request)
        if isinstance(checked, Response):
            return checked
        pre, form = checked
        login = form.get(source.login_field, "").strip()
        password = form.get("password", "")
        if source.login_pattern and not re.fullmatch(source.login_pattern, login):
            return login_form(pre, "invalid_login", f"{source.login_label}: wrong format.")
        account = source.accounts.get(login)
        if account is None or not hmac.compare_digest(password.encode(), account.password.encode()):
            return login_form(pre, "invalid_credentials", "Invalid credentials.")
        if account.behaviour is Behaviour.DOWN:
            return unavailable()
        if account.behaviour is Behaviour.LOCKED:
            return message("Sign-in", "Account locked. Please contact us.", "account_locked")
        if account.behaviour is Behaviour.SLOW and not await pause(request, state.slow_seconds):
            return unavailable()
        remember = source.remembers_device and form.get("remember_device") == "1"
        if account.behaviour is Behaviour.OTP:
            pending = Pending(source.key, account.login, time.monotonic(), remember=remember)
            pending_id = state.pending.put(pending)
            response = redirect(f"{path}/otp")
            set_cookie(response, otp_cookie, pending_id, path, SESSION_TTL_S)
            return response
        return open_session(account, remember=remember)

    @router.get("/otp")
    async def otp_page(request: Request) -> Response:
        if (blocked := await gate(request)) is not None:
            return blocked
        pending_id = request.cookies.get(otp_cookie)
        if pending_id is None or state.pending.get(pending_id, source.key) is None:
            return expired()
        return otp_form(pending_id)

    @router.post("/otp")
    async def otp_submit(request: Request) -> Response:
        form = await read_form(request)
        if (blocked := await gate(request)) is not None:
            return blocked
        pending_id = request.cookies.get(otp_cookie)
        if form is None or not state.csrf_ok("otp", pending_id, form.get("csrf_token")):
            return bad_request()
        pending = state.pending.get(pending_id, source.key)
        if pending is None:
            return expired()
        assert pending_id is not None  # a pending entry was found under it
        if not hmac.compare_digest(form.get("code", "").strip().encode(), OTP_CODE.encode()):
            pending.attempts += 1
            if pending.attempts >= MAX_OTP_ATTEMPTS:
                state.pending.drop(pending_id)
                return expired("Too many wrong codes. Please sign in again.")
            return otp_form(pending_id, "invalid_otp")
        state.pending.drop(pending_id)
        response = open_session(source.accounts[pending.login], remember=pending.remember)
        clear_cookie(response, otp_cookie, path)
        return response

    @router.post("/resume")
    async def resume(request: Request) -> Response:
        if not source.remembers_device:
            return Response("not found", status_code=404, media_type="text/plain")
        checked = await posted_with_login_csrf(request)
        if isinstance(checked, Response):
            return checked
        pre, form = checked
        token = form.get("device_token", "")
        entry = state.devices.find(token, source.key)
        account = source.accounts.get(entry.login) if entry else None
        if account is None:
            text = "This device is no longer remembered. Please sign in."
            return login_form(pre, "device_token_revoked", text)
        if account.behaviour is Behaviour.DOWN:
            return unavailable()
        # A token never opens a locked account, whenever the lock came.
        if account.behaviour is Behaviour.LOCKED or account.person is None:
            return message("Sign-in", "Account locked. Please contact us.", "account_locked")
        if account.behaviour is Behaviour.SLOW and not await pause(request, state.slow_seconds):
            return unavailable()
        if source.device_token_single_use:
            state.devices.revoke(token, source.key)
        return open_session(account)

    @router.post("/resume/forget")
    async def forget(request: Request) -> Response:
        if not source.remembers_device:
            return Response("not found", status_code=404, media_type="text/plain")
        checked = await posted_with_login_csrf(request)
        if isinstance(checked, Response):
            return checked
        state.devices.revoke(checked[1].get("device_token"), source.key)
        heading = "This device is no longer remembered."
        return page("message.html", source=source, page="device-forgotten", heading=heading)

    def session_of(request: Request) -> tuple[Session, Account] | None:
        session = state.sessions.get(request.cookies.get(session_cookie), source.key)
        account = source.accounts[session.login] if session else None
        if session is None or account is None or account.person is None:
            return None
        return session, account

    def logged_in(request: Request) -> Account | None:
        found = session_of(request)
        return found[1] if found else None

    def _data_page(view: PageView) -> Callable[[Request], Awaitable[Response]]:
        async def show(request: Request) -> Response:
            if (blocked := await gate(request, data_page=True)) is not None:
                return blocked
            found = session_of(request)
            person = found[1].person if found else None
            if found is None or person is None:
                return redirect(f"{path}/login")
            # A device token minted by this login is shown once, on the first page after it.
            reveal, found[0].reveal = found[0].reveal, None
            items = [
                {
                    "attr": item.attr,
                    "label": item.label,
                    "text": item.text(person),
                    "machine": item.machine(person) if item.machine else None,
                }
                for item in view.fields
            ]
            return page(
                "data.html",
                source=source,
                page=view.slug,
                view=view,
                items=items,
                device_token=reveal,
            )

        return show

    for view in source.pages:
        router.add_api_route(f"/{view.slug}", _data_page(view), methods=["GET"])
    if source.documents:
        _add_documents(router, source, gate, logged_in)
    return router


def _document_bytes(account: Account, person: Person, view: DocumentView) -> bytes:
    valid = view.make(person)
    if account.document_variant is not None:
        return document_variant(account.document_variant, valid)
    if account.behaviour is Behaviour.BROKEN:
        return document_variant("truncated", valid)
    return valid


def _add_documents(
    router: APIRouter,
    source: SandboxSource,
    gate: Callable[..., Awaitable[Response | None]],
    logged_in: Callable[[Request], Account | None],
) -> None:
    """The "Documents" page and its files, behind the portal's session."""
    path = f"/{source.key}"
    by_name = {view.filename: view for view in source.documents}

    @router.get("/documents")
    async def documents(request: Request) -> Response:
        if (blocked := await gate(request, data_page=True)) is not None:
            return blocked
        if logged_in(request) is None:
            return redirect(f"{path}/login")
        return page("documents.html", source=source, page="documents", documents=source.documents)

    @router.get("/documents/{filename}")
    async def document(filename: str, request: Request) -> Response:
        if (blocked := await gate(request, data_page=True)) is not None:
            return blocked
        account = logged_in(request)
        view = by_name.get(filename)
        if account is None or account.person is None:
            return redirect(f"{path}/login")
        if view is None:
            return Response("no such document", status_code=404, media_type="text/plain")
        return Response(
            _document_bytes(account, account.person, view),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{view.filename}"'},
        )
