"""The partner's side of the person's rights (docs/partner-guide.md, "Rights requests"):

- `GET /v1/rights-requests?status=open|done|refused|all` (or `POST` with a form body, for
  `private_key_jwt`) → `{"requests": [{"reference", "kind", "fields", "recipient",
  "created_at", "deadline", "status", "answered_at", "subject_ref", "data_source",
  "shares": [{"delivered_at", "delivery_key"}]}]}`;
- `POST /v1/rights-requests/{reference}/answer` `outcome=done|refused` → `{"reference",
  "status"}`; final, audited before the status changes.

The same client authentication as `POST /token` (`client_secret_basic`, or `private_key_jwt`
in a form body); a failure is 401 `invalid_client` and counts toward the failed-
authentication limit. A partner sees and answers its own requests only: another partner's
reference is `not_found`, exactly like an unknown one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sharelock.oauth import InvalidRequest, authenticate_client
from sharelock.web.deps import Broker, broker_of
from sharelock.web.errors import NO_STORE
from sharelock.web.forms import is_form, read_form

router = APIRouter()

STATUSES = {"open": "open", "done": "done", "refused": "refused", "all": None}


async def _partner(broker: Broker, request: Request, form: dict[str, str]) -> str:
    partner: Any = await authenticate_client(
        request.headers.get("authorization"),
        form,
        broker.partners,
        issuer=broker.settings.issuer,
        remember_once=broker.remember_assertion,
        now=broker.clock.now(),
    )
    client_id: str = partner.client_id
    return client_id


def _status(value: str | None) -> str | None:
    if value is None:
        return "open"
    if value not in STATUSES:
        raise InvalidRequest("status: one of open, done, refused, all")
    return STATUSES[value]


async def _list(request: Request, form: dict[str, str]) -> JSONResponse:
    broker = broker_of(request)
    client_id = await _partner(broker, request, form)
    status = _status(form.get("status", request.query_params.get("status")))
    return JSONResponse(await broker.desk.for_partner(client_id, status), headers=NO_STORE)


@router.get("/v1/rights-requests")
async def list_requests(request: Request) -> JSONResponse:
    return await _list(request, {})


@router.post("/v1/rights-requests")
async def list_requests_by_post(request: Request) -> JSONResponse:
    return await _list(request, await read_form(request) if is_form(request) else {})


@router.post("/v1/rights-requests/{reference}/answer")
async def answer(reference: str, request: Request) -> JSONResponse:
    broker = broker_of(request)
    form = await read_form(request)
    client_id = await _partner(broker, request, form)
    outcome = form.get("outcome", "")
    if outcome not in ("done", "refused"):
        raise InvalidRequest("outcome: done or refused")
    body = await broker.desk.answer(client_id, reference, outcome)
    return JSONResponse(body, headers=NO_STORE)
