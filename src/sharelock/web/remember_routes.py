"""The consent screen's side of the optional account (docs/accounts.md), bound to the flow's
session cookie like the rest of the consent API and, for what needs an account, to the
account's session cookie (`account_routes`):

- `POST /api/flows/{flow_id}/one-click` `{"source": "as_…"}`: collect with a remembered source;
  the same answers as `POST …/credentials`;
- `POST /api/flows/{flow_id}/remember` `{"remember": true|false}`: the answer to the offer made
  after an approval (`"remember_offer"` in the decision's answer). Yes needs a signed-in
  account (new or not): `{"remembered": true, "source": "as_…"}`; no: `{"remembered": false}`.

What `GET /api/flows/{id}` and the decision add is in `web.remembered`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sharelock.web.consent_routes import Flow
from sharelock.web.deps import broker_of
from sharelock.web.errors import NO_STORE
from sharelock.web.remembered import signed_in_required

router = APIRouter(prefix="/api/flows")


class OneClickBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    source: str = Field(min_length=1, max_length=64, pattern=r"^as_[0-9a-f]{32}$")


class RememberBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    remember: bool


@router.post("/{flow_id}/one-click")
async def one_click(flow: Flow, body: OneClickBody, request: Request) -> JSONResponse:
    signed = await signed_in_required(request)
    answer = await broker_of(request).remembered.one_click(signed, flow, body.source)
    return JSONResponse(answer, headers=NO_STORE)


@router.post("/{flow_id}/remember")
async def remember(flow: Flow, body: RememberBody, request: Request) -> JSONResponse:
    broker = broker_of(request)
    if not body.remember:
        return JSONResponse(await broker.consent.decline_remember(flow), headers=NO_STORE)
    signed = await signed_in_required(request)
    return JSONResponse(await broker.remembered.remember(signed, flow), headers=NO_STORE)
