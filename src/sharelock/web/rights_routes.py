"""A person's rights without an account: the JSON API under `/api/rights/` and the page
`GET /rights` (docs/privacy-rights.md).

- `POST /api/rights/traces` `{"receipt"}` or `{"data_source", "login"}` → the traces about
  the person, and what the broker keeps by law, with the reason.
- `POST /api/rights/erasure` `{"receipt"}` → erases the identity data kept for that share;
  says what stays (the audit trace), why, and until when.
- `POST /api/rights/export` `{"receipt"}` or `{"data_source", "login"}` → one JSON document
  with everything held (the traces; with the receipt, the identity data still kept).

Bodies, not URLs, carry the receipt and the login (URLs end up in logs and histories). No
session, no cookie: the receipt or the login is the whole request. Every request is audited
before it is answered; if the row cannot be written the answer is 503 and nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sharelock.audit.receipts import MAX_RECEIPT_LENGTH, InvalidReceipt
from sharelock.rights import ReceiptRequired, RightsService, Subject, UnknownDataSource
from sharelock.web import i18n
from sharelock.web.consent_page import PAGE_CSP, language_links, language_of
from sharelock.web.deps import broker_of
from sharelock.web.errors import NO_STORE, error_response
from sharelock.web.templates import render

router = APIRouter()

MAX_LOGIN_LENGTH = 256


class SubjectBody(BaseModel):
    """Either the receipt of a share, or the data source and the login used there."""

    model_config = ConfigDict(extra="forbid", strict=True)
    receipt: str | None = Field(default=None, min_length=1, max_length=MAX_RECEIPT_LENGTH)
    data_source: str | None = Field(default=None, min_length=1, max_length=40)
    login: str | None = Field(default=None, min_length=1, max_length=MAX_LOGIN_LENGTH)


class _Refused(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _service(request: Request) -> RightsService:
    broker = broker_of(request)
    return RightsService(
        broker.settings,
        broker.keys,
        broker.store,
        broker.engine,
        broker.audit,
        broker.partners,
        {source_id: c.info.name for source_id, c in broker.connectors.items()},
    )


async def _subject(service: RightsService, body: SubjectBody) -> Subject:
    if body.receipt is not None and body.data_source is None and body.login is None:
        try:
            return await service.by_receipt(body.receipt)
        except InvalidReceipt:
            raise _Refused(
                error_response(
                    400,
                    "invalid_receipt",
                    "this is not a valid receipt of this broker, or it has expired",
                )
            ) from None
    if body.receipt is None and body.data_source is not None and body.login is not None:
        try:
            return await service.by_login(body.data_source, body.login)
        except UnknownDataSource:
            raise _Refused(
                error_response(400, "invalid_request", "unknown data source, or empty login")
            ) from None
    raise _Refused(
        error_response(400, "invalid_request", "give either receipt, or data_source and login")
    )


def _json(body: dict[str, Any], **headers: str) -> JSONResponse:
    return JSONResponse(body, headers={**NO_STORE, **headers})


@router.post("/api/rights/traces")
async def traces(body: SubjectBody, request: Request) -> JSONResponse:
    service = _service(request)
    try:
        subject = await _subject(service, body)
    except _Refused as refused:
        return refused.response
    return _json(await service.access(subject))


@router.post("/api/rights/erasure")
async def erasure(body: SubjectBody, request: Request) -> JSONResponse:
    service = _service(request)
    try:
        subject = await _subject(service, body)
        return _json(await service.erase(subject))
    except _Refused as refused:
        return refused.response
    except ReceiptRequired:
        return error_response(
            400,
            "receipt_required",
            "erasure needs the receipt of the share: a login alone does not prove who asks",
        )


@router.post("/api/rights/export")
async def export(body: SubjectBody, request: Request) -> JSONResponse:
    service = _service(request)
    try:
        subject = await _subject(service, body)
    except _Refused as refused:
        return refused.response
    document = await service.export(subject)
    name = f"sharelock-export-{datetime.now(UTC):%Y-%m-%d}.json"
    return _json(document, **{"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/rights", response_class=HTMLResponse)
async def page(request: Request) -> HTMLResponse:
    """The person's page: present a receipt or a login, see the traces, erase, download."""
    broker = broker_of(request)
    lang = language_of(request)
    t = i18n.Translator(lang)
    prefixes = ("rights.", "error.network", "error.generic", "error.temporarily_unavailable")
    html = render(
        request,
        "rights.html",
        {
            "lang": lang,
            "t": t,
            "languages": language_links(request, lang),
            "messages": {k: v for k, v in t.messages.items() if k.startswith(prefixes)},
            "sources": [
                {"id": source_id, "name": connector.info.name}
                for source_id, connector in broker.connectors.items()
            ],
            "audit_retention": t.duration(
                int(broker.settings.retention.audit_trace.total_seconds())
            ),
            "identity_retention": t.duration(
                int(broker.settings.retention.identity_data.total_seconds())
            ),
        },
    )
    return HTMLResponse(
        html,
        headers={**NO_STORE, "Content-Security-Policy": PAGE_CSP, "Content-Language": lang},
    )
