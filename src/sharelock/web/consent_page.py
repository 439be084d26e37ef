"""`GET /consent/{flow_id}`: the page a person sees. Its script talks to the JSON API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from sharelock.flow.errors import FlowError
from sharelock.web.deps import broker_of
from sharelock.web.errors import NO_STORE, error_page
from sharelock.web.session import read_session
from sharelock.web.templates import render

router = APIRouter()

# The page may load its own script, style and JSON, and nothing else.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@router.get("/consent/{flow_id}", response_class=HTMLResponse)
async def consent(flow_id: str, request: Request) -> HTMLResponse:
    broker = broker_of(request)
    try:
        flow = await broker.consent.load(flow_id, read_session(request))
    except FlowError as exc:
        return error_page(request, exc.status, exc.description)
    html = render(request, "consent.html", {"flow_id": flow.flow_id})
    return HTMLResponse(html, headers={**NO_STORE, "Content-Security-Policy": PAGE_CSP})
