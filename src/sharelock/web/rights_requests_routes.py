"""The rights a person asks about one online service, from `/rights` (docs/privacy-rights.md):

- `POST /api/rights/requests` `{"receipt"} or {"proof"}, "client_id", "kind", "fields"?,
  "recipient"?` → what the broker did at once and, when the partner received data, the
  request forwarded to it: `{"kind", "partner": {"client_id", "name", "role", "dpo_contact"},
  "done": {…}, "received", "forwarded": {"reference", "deadline", "status", …} | null}`.

`kind` is one of `rectification` (`fields`: the data categories or fields concerned, names
only), `erasure`, `objection`, `restriction`, `withdrawal` (of consent) or `portability`
(`recipient`: the other controller to forward the data to). The same proof of identity as
every right (the receipt of a share, or a fresh sign-in's proof); audited before anything is
done (`sharelock.rights.desk`), 503 and nothing done when the row cannot be written.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from sharelock.web.deps import broker_of
from sharelock.web.errors import NO_STORE
from sharelock.web.rights_routes import Refused, SubjectBody, subject_of

router = APIRouter()


class RightsRequestBody(SubjectBody):
    client_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    kind: str = Field(min_length=1, max_length=16, pattern=r"^[a-z]+$")
    fields: list[str] = Field(default_factory=list, max_length=24)
    recipient: str | None = Field(default=None, max_length=200)


@router.post("/api/rights/requests")
async def ask(body: RightsRequestBody, request: Request) -> JSONResponse:
    try:
        subject = await subject_of(request, SubjectBody(receipt=body.receipt, proof=body.proof))
    except Refused as refused:
        return refused.response
    answer = await broker_of(request).desk.ask(
        subject, body.client_id, body.kind, body.fields, body.recipient
    )
    return JSONResponse(answer, headers=NO_STORE)
