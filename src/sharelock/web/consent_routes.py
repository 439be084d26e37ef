"""The consent screen's JSON API (SPEC "consent screen"), bound to the session cookie."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sharelock.checks import Description, render
from sharelock.documents import DEFAULT_LIMITS, PNG
from sharelock.flow import FlowState
from sharelock.web import i18n, remembered
from sharelock.web.consent_page import language_of
from sharelock.web.deps import broker_of
from sharelock.web.errors import NO_STORE
from sharelock.web.session import read_session

router = APIRouter(prefix="/api/flows")

_MAX_JWE = 64 * 1024


class CredentialsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_source: str = Field(min_length=1, max_length=64)
    credentials: str = Field(min_length=1, max_length=_MAX_JWE)


class OtpBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    otp: str = Field(min_length=1, max_length=_MAX_JWE)


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approve: bool
    omit: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=32)
    # Checks the person declines to answer, by their `index`; and whether a close-match
    # name may go to the partner (docs/checks.md).
    decline_checks: list[Annotated[int, Field(ge=0, lt=64)]] = Field(
        default_factory=list, max_length=16
    )
    reveal_actual_name: bool = False


class MaintenanceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    keep: bool


async def current_flow(flow_id: str, request: Request) -> FlowState:
    broker = broker_of(request)
    return await broker.consent.load(flow_id, read_session(request, broker.settings, flow_id))


Flow = Annotated[FlowState, Depends(current_flow)]


def _json(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers=NO_STORE)


def _render_checks(items: list[dict[str, Any]], lang: str) -> None:
    """Each check's question (and answer) as text in the person's language (`?lang=`, else
    `Accept-Language`)."""
    for item in items:
        for part in ("question", "answer"):
            if part in item:
                described = item[part]
                item[part] = render(Description(described["key"], described["params"]), lang)


@router.get("/{flow_id}")
async def describe(flow: Flow, request: Request) -> JSONResponse:
    described = await broker_of(request).consent.describe(flow)
    _render_checks(described["checks"], language_of(request))
    described["account"] = await remembered.account_block(request, flow)
    return _json(described)


@router.post("/{flow_id}/credentials")
async def credentials(flow: Flow, body: CredentialsBody, request: Request) -> JSONResponse:
    consent = broker_of(request).consent
    return _json(await consent.submit_credentials(flow, body.data_source, body.credentials))


@router.post("/{flow_id}/otp")
async def otp(flow: Flow, body: OtpBody, request: Request) -> JSONResponse:
    return _json(await broker_of(request).consent.submit_otp(flow, body.otp))


@router.get("/{flow_id}/data")
async def data(flow: Flow, request: Request) -> JSONResponse:
    """The collected data for review; each field's `display` (when present) is the value in
    the person's language (`?lang=`, else `Accept-Language`), `value` what the partner gets."""
    review = await broker_of(request).consent.review(flow)
    lang = language_of(request)
    _render_checks(review["checks"], lang)
    t = i18n.Translator(lang)
    for field in review["fields"]:
        if "value" not in field:  # a document: its `pages` are images (`document_page`)
            continue
        shown = i18n.display_value(field["field"], field["value"], t)
        if shown is not None:
            field["display"] = shown
    return _json(review)


@router.get("/{flow_id}/documents/{scope}/{page}.png")
async def document_page(
    flow: Flow,
    scope: Annotated[str, Path(max_length=64, pattern=r"^[a-z_]+$")],
    page: Annotated[int, Path(ge=1, le=DEFAULT_LIMITS.max_pages)],
    request: Request,
) -> Response:
    """A page of a collected document, drawn for the review (never cached, never stored)."""
    png = await broker_of(request).consent.document_page(flow, scope, page)
    return Response(png, media_type=PNG, headers=NO_STORE)


@router.post("/{flow_id}/decision")
async def decision(flow: Flow, body: DecisionBody, request: Request) -> JSONResponse:
    consent = broker_of(request).consent
    answer = await consent.decide(
        flow, body.approve, body.omit, body.decline_checks, body.reveal_actual_name
    )
    await remembered.offer_signed_in(request, answer)
    return _json(answer)


@router.post("/{flow_id}/maintenance")
async def maintenance(flow: Flow, body: MaintenanceBody, request: Request) -> JSONResponse:
    """The answer to the offer made after a failed collection: may the broker keep the
    credentials, sealed in the HSM, for the connector's maintenance (120 days at most)?"""
    return _json(await broker_of(request).consent.answer_maintenance(flow, body.keep))


# -- identity verification (docs/identity-verification.md, "In a share") ----------------------
# Each image is a compact JWE made in the browser (`consent.js`), within
# `Settings.max_image_envelope_bytes` (checked by the flow); `_MAX_IMAGE_JWE` only bounds what
# the model parses. The body limit of these routes is `web.app.IMAGE_BODY_PATH`'s.
_MAX_IMAGE_JWE = 16 * 1024 * 1024


class IdentityConsentBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    agree: bool


class IdentityDocumentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: str = Field(min_length=1, max_length=_MAX_IMAGE_JWE)


class IdentityFramesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    frames: list[Annotated[str, Field(min_length=1, max_length=_MAX_IMAGE_JWE)]] = Field(
        min_length=2, max_length=12
    )


@router.post("/{flow_id}/identity/consent")
async def identity_consent(flow: Flow, body: IdentityConsentBody, request: Request) -> JSONResponse:
    """The answer on the biometric-consent screen (GDPR Art. 9): its own screen, its own yes."""
    return _json(await broker_of(request).consent.identity_consent(flow, body.agree))


@router.post("/{flow_id}/identity/document")
async def identity_document(
    flow: Flow, body: IdentityDocumentBody, request: Request
) -> JSONResponse:
    return _json(await broker_of(request).consent.identity_document(flow, body.image))


@router.post("/{flow_id}/identity/frames")
async def identity_frames(flow: Flow, body: IdentityFramesBody, request: Request) -> JSONResponse:
    return _json(await broker_of(request).consent.identity_frames(flow, body.frames))


@router.post("/{flow_id}/identity/verify")
async def verify_identity(flow: Flow, request: Request) -> JSONResponse:
    """Run the verification on the captured images, which are erased as it starts."""
    return _json(await broker_of(request).consent.verify_identity(flow))
