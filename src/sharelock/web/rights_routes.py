"""A person's rights without an account: the JSON API under `/api/rights/` and the page
`GET /rights` (docs/privacy-rights.md).

Who asks is proven, never just claimed: by the receipt of a share, or by a proof of control
of the data-source account (the person signs in to the source again, through the same
encrypted-credential step as the consent screen; `sharelock.rights.proofs`).

- `POST /api/rights/proofs` `{"data_source", "credentials": JWE}` → `{"status": "verified",
  "proof", "expires_in"}`, `{"status": "otp_required", "pending"}` or `{"status": "failed",
  "reason", "message"}` (HTTP 200, as the consent API answers a collection).
- `POST /api/rights/proofs/otp` `{"pending", "otp": JWE}` → the same statuses.
- `POST /api/rights/traces` `{"receipt"}` or `{"proof"}` → the traces about the person, and
  what the broker keeps by law, with the reason.
- `POST /api/rights/erasure` `{"receipt"}` or `{"proof"}` → erases the identity data kept for
  that share (or every share of the proven login) and kept maintenance credentials; says what
  stays (the audit trace), why, and until when.
- `POST /api/rights/export` `{"receipt"}` or `{"proof"}` → one JSON document with everything
  held.
- `POST /api/rights/requests` (`rights_requests_routes`): the rights only a partner can fully
  honour, and withdrawal of consent.

Bodies, not URLs, carry receipts, proofs and envelopes (URLs end up in logs and histories). No
cookie: the receipt or the proof is the whole request. Every request is audited before it is
answered; if the row cannot be written the answer is 503 and nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sharelock.audit import MAX_RECEIPT_LENGTH, InvalidReceipt
from sharelock.rights import (
    KINDS,
    ProofNotFound,
    ProofService,
    RightsService,
    Subject,
    UnknownDataSource,
)
from sharelock.scopes import SCOPES
from sharelock.web import i18n
from sharelock.web.consent_page import PAGE_CSP, language_links, language_of
from sharelock.web.deps import broker_of
from sharelock.web.errors import NO_STORE, error_response
from sharelock.web.templates import render

router = APIRouter()

MAX_HANDLE_LENGTH = 128
MAX_JWE_LENGTH = 64 * 1024  # as the consent API; the broker's own limit applies after


class SubjectBody(BaseModel):
    """Either the receipt of a share, or a proof handle (`/api/rights/proofs`)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    receipt: str | None = Field(default=None, min_length=1, max_length=MAX_RECEIPT_LENGTH)
    proof: str | None = Field(default=None, min_length=1, max_length=MAX_HANDLE_LENGTH)


class ProofBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    data_source: str = Field(min_length=1, max_length=40)
    credentials: str = Field(min_length=1, max_length=MAX_JWE_LENGTH)


class ProofOtpBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    pending: str = Field(min_length=1, max_length=MAX_HANDLE_LENGTH)
    otp: str = Field(min_length=1, max_length=MAX_JWE_LENGTH)


class Refused(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _service(request: Request) -> RightsService:
    return broker_of(request).rights


def _proofs(request: Request) -> ProofService:
    return broker_of(request).proofs


def _invalid_proof() -> JSONResponse:
    return error_response(
        400,
        "invalid_proof",
        "this proof is unknown or has expired; sign in to the data source again",
    )


async def subject_of(request: Request, body: SubjectBody) -> Subject:
    if body.receipt is not None and body.proof is None:
        try:
            return await _service(request).by_receipt(body.receipt)
        except InvalidReceipt:
            raise Refused(
                error_response(
                    400,
                    "invalid_receipt",
                    "this is not a valid receipt of this broker, or it has expired",
                )
            ) from None
    if body.proof is not None and body.receipt is None:
        try:
            return await _proofs(request).subject(body.proof)
        except ProofNotFound:
            raise Refused(_invalid_proof()) from None
    raise Refused(error_response(400, "invalid_request", "give either receipt or proof"))


def _json(body: dict[str, Any], **headers: str) -> JSONResponse:
    return JSONResponse(body, headers={**NO_STORE, **headers})


@router.post("/api/rights/proofs")
async def prove(body: ProofBody, request: Request) -> JSONResponse:
    """Sign in to the data source again; a proof when the connector's login succeeds."""
    try:
        return _json(await _proofs(request).start(body.data_source, body.credentials))
    except UnknownDataSource:
        return error_response(400, "invalid_request", "unknown data source")


@router.post("/api/rights/proofs/otp")
async def prove_otp(body: ProofOtpBody, request: Request) -> JSONResponse:
    """The one-time code the data source asked for, encrypted like the credentials."""
    try:
        return _json(await _proofs(request).finish_otp(body.pending, body.otp))
    except ProofNotFound:
        return error_response(
            400,
            "invalid_proof",
            "no sign-in awaits a one-time code under this handle, or it has expired; "
            "sign in to the data source again",
        )


@router.post("/api/rights/traces")
async def traces(body: SubjectBody, request: Request) -> JSONResponse:
    try:
        subject = await subject_of(request, body)
    except Refused as refused:
        return refused.response
    view = await _service(request).access(subject)
    # Who answers for the data, and the person's requests to partners with their deadlines.
    view.update(await broker_of(request).desk.overview(subject, view["traces"]))
    return _json(view)


@router.post("/api/rights/erasure")
async def erasure(body: SubjectBody, request: Request) -> JSONResponse:
    try:
        subject = await subject_of(request, body)
    except Refused as refused:
        return refused.response
    return _json(await _service(request).erase(subject))


@router.post("/api/rights/export")
async def export(body: SubjectBody, request: Request) -> JSONResponse:
    try:
        subject = await subject_of(request, body)
    except Refused as refused:
        return refused.response
    document = await _service(request).export(subject)
    name = f"sharelock-export-{datetime.now(UTC):%Y-%m-%d}.json"
    return _json(document, **{"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/rights", response_class=HTMLResponse)
async def page(request: Request) -> HTMLResponse:
    """The person's page: present a receipt or sign in to a source, see the traces, erase,
    download."""
    broker = broker_of(request)
    lang = language_of(request)
    t = i18n.Translator(lang)
    prefixes = (
        "rights.",
        "scope.",
        "error.network",
        "error.generic",
        "error.temporarily_unavailable",
        "error.rate_limited",
        "error.too_many_attempts",
    )
    html = render(
        request,
        "rights.html",
        {
            "lang": lang,
            "t": t,
            "languages": language_links(request, lang),
            "messages": {k: v for k, v in t.messages.items() if k.startswith(prefixes)},
            "sources": [
                {
                    "id": source_id,
                    "name": connector.info.name,
                    "login_label": connector.info.login_label,
                }
                for source_id, connector in broker.connectors.items()
            ],
            "kinds": KINDS,
            "scopes": SCOPES,
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
