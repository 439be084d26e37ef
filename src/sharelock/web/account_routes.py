"""The optional account's JSON API (docs/accounts.md), used by `static/account.js`:

- `POST /api/account/new/options` `{"label"?}` → `{"ceremony", "publicKey"}`, then
  `POST /api/account/new` `{"ceremony", "credential"}` → `{"status": "created",
  "recovery_code"}` (shown once) and the session cookie;
- `POST /api/account/sign-in/options` → `{"ceremony", "publicKey"}`, then
  `POST /api/account/sign-in` `{"ceremony", "credential"}` → the session cookie;
- `POST /api/account/recovery` `{"code"}` → a session that may only add a passkey;
- signed in: `POST /api/account/passkeys/options` and `POST /api/account/passkeys` (a new
  passkey; `recovery_code` when a new one is issued), `DELETE /api/account/passkeys/{id}`,
  `DELETE /api/account/sources/{id}` (its material erased at once), `POST /api/account/export`,
  `POST /api/account/delete`, `POST /api/account/sign-out`.

The session cookie follows `web/session.py`'s rules: HttpOnly, `__Host-` and Secure under
https, path `/`, and SameSite=Strict (nothing on another site starts a request that carries
it); its life is `Retention.account_session`. A request that changes something must also come
from the broker's own origin when the browser says where it comes from (`Origin`).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sharelock.accounts import (
    MAX_HANDLE_LENGTH,
    AccountError,
    AccountService,
    CeremonyRefused,
    ForeignOrigin,
    Holdings,
    NotSignedIn,
    SignedIn,
    Started,
)
from sharelock.config import Settings
from sharelock.errors import ServiceUnavailable
from sharelock.web.deps import broker_of
from sharelock.web.errors import NO_STORE, error_response, unavailable_response
from sharelock.web.session import secure_cookies

log = logging.getLogger("sharelock.web.accounts")
router = APIRouter()

SECURE_COOKIE = "__Host-sl_account"
LOOPBACK_COOKIE = "sl_account"
_HANDLE_LENGTH = range(20, 129)


class LabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    label: str | None = Field(default=None, max_length=200)


class AnswerBody(BaseModel):
    """The browser's answer to a ceremony: the handle from its options, and the credential as
    `PublicKeyCredential` JSON (binary members in base64url)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    ceremony: str = Field(min_length=1, max_length=MAX_HANDLE_LENGTH)
    credential: dict[str, Any]


class RecoveryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    code: str = Field(min_length=1, max_length=80)


# -- the session cookie ----------------------------------------------------------------------


def cookie_name(settings: Settings) -> str:
    return SECURE_COOKIE if secure_cookies(settings) else LOOPBACK_COOKIE


def read_account_session(request: Request, settings: Settings) -> str | None:
    value = request.cookies.get(cookie_name(settings))
    if value is None or len(value) not in _HANDLE_LENGTH:
        return None
    return value


def _set_session(response: Response, settings: Settings, handle: str, max_age: int) -> None:
    response.set_cookie(
        cookie_name(settings),
        handle,
        max_age=max(1, max_age),
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="strict",
    )


def _clear_session(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        cookie_name(settings),
        path="/",
        secure=secure_cookies(settings),
        httponly=True,
        samesite="strict",
    )


# -- helpers -----------------------------------------------------------------------------------


def _own_origin(settings: Settings) -> str:
    parts = urlsplit(settings.issuer)
    return f"{parts.scheme}://{parts.netloc}"


def _accounts(request: Request) -> AccountService:
    broker = broker_of(request)
    accounts: AccountService = broker.accounts
    own = accounts.relying_party.origin if accounts.relying_party else None
    origin = request.headers.get("origin")
    if origin is not None and origin not in (own, _own_origin(broker.settings)):
        raise ForeignOrigin("this request did not come from the account page")
    return accounts


def _holdings(request: Request) -> Holdings:
    return _accounts(request).holdings


async def _signed_in(request: Request) -> SignedIn:
    accounts = _accounts(request)
    signed = await accounts.signed_in(read_account_session(request, broker_of(request).settings))
    if signed is None:
        raise NotSignedIn("no account is signed in in this browser")
    return signed


def _json(body: dict[str, Any], **headers: str) -> JSONResponse:
    return JSONResponse(body, headers={**NO_STORE, **headers})


def _started(started: Started) -> JSONResponse:
    return _json({"ceremony": started.ceremony, "publicKey": started.public_key})


async def _with_session(request: Request, body: dict[str, Any], handle: str) -> JSONResponse:
    """The answer, with the new session's cookie; the session this browser held before, if
    any, ends (one browser, one session)."""
    broker = broker_of(request)
    await broker.accounts.end_session(read_account_session(request, broker.settings))
    response = _json(body)
    _set_session(response, broker.settings, handle, broker.accounts.session_seconds)
    return response


# -- creating, signing in ------------------------------------------------------------------


@router.post("/api/account/new/options")
async def creation_options(body: LabelBody, request: Request) -> JSONResponse:
    return _started(await _accounts(request).start_creation(body.label))


@router.post("/api/account/new")
async def create(body: AnswerBody, request: Request) -> JSONResponse:
    created = await _accounts(request).finish_creation(body.ceremony, body.credential)
    return await _with_session(
        request, {"status": "created", "recovery_code": created.recovery_code}, created.session
    )


@router.post("/api/account/sign-in/options")
async def sign_in_options(request: Request) -> JSONResponse:
    return _started(await _accounts(request).start_sign_in())


@router.post("/api/account/sign-in")
async def sign_in(body: AnswerBody, request: Request) -> JSONResponse:
    handle = await _accounts(request).finish_sign_in(body.ceremony, body.credential)
    return await _with_session(request, {"status": "signed_in"}, handle)


@router.post("/api/account/recovery")
async def recover(body: RecoveryBody, request: Request) -> JSONResponse:
    handle = await _accounts(request).recover(body.code)
    return await _with_session(request, {"status": "recovered"}, handle)


@router.post("/api/account/sign-out")
async def sign_out(request: Request) -> JSONResponse:
    accounts = _accounts(request)
    signed = await accounts.signed_in(read_account_session(request, broker_of(request).settings))
    if signed is not None:
        await accounts.sign_out(signed)
    response = _json({"status": "signed_out"})
    _clear_session(response, broker_of(request).settings)
    return response


# -- signed in -------------------------------------------------------------------------------


@router.post("/api/account/passkeys/options")
async def passkey_options(body: LabelBody, request: Request) -> JSONResponse:
    signed = await _signed_in(request)
    return _started(await _accounts(request).start_adding(signed, body.label))


@router.post("/api/account/passkeys")
async def add_passkey(body: AnswerBody, request: Request) -> JSONResponse:
    signed = await _signed_in(request)
    code = await _accounts(request).finish_adding(signed, body.ceremony, body.credential)
    return _json({"status": "added", "recovery_code": code})


@router.delete("/api/account/passkeys/{passkey_id}")
async def remove_passkey(passkey_id: int, request: Request) -> JSONResponse:
    signed = await _signed_in(request)
    await _holdings(request).remove_passkey(signed, passkey_id)
    return _json({"status": "removed"})


@router.delete("/api/account/sources/{source_id}")
async def revoke_source(source_id: str, request: Request) -> JSONResponse:
    signed = await _signed_in(request)
    await _holdings(request).revoke_source(signed, source_id)
    return _json({"status": "revoked"})


class SyncBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    allowed: bool


@router.post("/api/account/sources/{source_id}/sync")
async def set_sync(source_id: str, body: SyncBody, request: Request) -> JSONResponse:
    """Allow or stop the periodic re-sync of a source (a sign-in check, nothing kept)."""
    signed = await _signed_in(request)
    changed = await _holdings(request).set_sync(signed, source_id, body.allowed)
    return _json({"sync_consent": body.allowed, "changed": changed})


@router.post("/api/account/export")
async def export(request: Request) -> JSONResponse:
    signed = await _signed_in(request)
    document = await _holdings(request).export(signed)
    name = f"sharelock-account-{document['generated_at'][:10]}.json"
    return _json(document, **{"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/api/account/delete")
async def delete(request: Request) -> JSONResponse:
    signed = await _signed_in(request)
    await _holdings(request).delete(signed)
    response = _json({"status": "deleted"})
    _clear_session(response, broker_of(request).settings)
    return response


# -- errors ----------------------------------------------------------------------------------


async def account_error(request: Request, exc: Exception) -> Response:
    """An account's typed error as its JSON answer: fixed text, never what the request held."""
    if isinstance(exc, ServiceUnavailable):
        return unavailable_response(exc)
    if not isinstance(exc, AccountError):
        raise exc
    if isinstance(exc, CeremonyRefused):
        log.info("passkey refused: %s", exc.reason)
    response = error_response(exc.status, exc.error, str(exc))
    if isinstance(exc, NotSignedIn):
        _clear_session(response, broker_of(request).settings)
    return response


def install(app: FastAPI) -> None:
    """The API's routes and its errors' answers."""
    app.include_router(router)
    app.add_exception_handler(AccountError, account_error)
