"""The auditor's API (SPEC, "Interfaces"): `POST /audit/hash`, `GET /audit/traces` (JSON pages,
or a CSV / JSON-lines export), `GET /audit/verify`, `GET /audit/checkpoints`.

Every endpoint takes an auditor's bearer token (`sharelock auditors add`); without a valid
one the answer is 401 with `WWW-Authenticate: Bearer`. Every question is written to the
trail (`auditor_query`: the auditor's id, never the token, and the filters) *before* it is
answered; if that row cannot be written the answer is 503 and nothing is disclosed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from itertools import islice
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from sharelock.audit import (
    EXPORT_BATCH,
    MEDIA_TYPES,
    AuditEvent,
    AuditRecord,
    EventType,
    InvalidAuditEvent,
    QueryKind,
    TraceFilters,
    auditor_query_event,
    export_lines,
    iter_matching,
    login_hash_input,
    read_checkpoints,
    search_filtered,
    verify_trail,
)
from sharelock.auditors import Auditor
from sharelock.blocking import run_blocking
from sharelock.keys import KeyLayer, KeyNotFound
from sharelock.oauth import InvalidRequest, InvalidToken
from sharelock.ratelimit import RateLimited
from sharelock.web.deps import Broker, broker_of
from sharelock.web.errors import NO_STORE

router = APIRouter(prefix="/audit")

MAX_LOGIN_LENGTH = 256


async def current_auditor(request: Request) -> Auditor:
    """The auditor whose bearer token came with the request, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        # No credentials at all: a challenge without an error code (RFC 6750 §3.1).
        raise InvalidToken(
            "an auditor's bearer token is required", credentials=bool(header.strip())
        )
    registry = broker_of(request).auditors
    auditor = await run_blocking(registry.authenticate, token)
    if auditor is None:
        raise InvalidToken("unknown or revoked auditor token")
    return auditor


AuditorDep = Annotated[Auditor, Depends(current_auditor)]


async def _count_lookup(broker: Broker, auditor: Auditor) -> None:
    """One look-up against the auditor's budget (`Settings.limits.auditor_lookups`): each
    costs an HSM operation or a scan of the trail, and a loop over logins is an enumeration.
    The first refusal of a window is itself written to the trail."""
    try:
        await broker.limiter.hit("auditor_lookups", auditor.auditor_id)
    except RateLimited:
        if await broker.limiter.first_refusal("auditor_lookups", auditor.auditor_id):
            await _record(
                broker,
                AuditEvent(
                    event=EventType.RATE_LIMITED,
                    actor=auditor.actor,
                    outcome="refused",
                    detail_code="auditor_lookups",
                ),
            )
        raise


async def _record(broker: Broker, event: AuditEvent) -> None:
    """Write the auditor's question to the trail; `AuditUnavailable` (503) stops the answer."""
    await run_blocking(broker.trail.record, event)


async def _record_query(
    request: Request,
    auditor: Auditor,
    kind: QueryKind,
    filters: TraceFilters | None = None,
    **extra: str | int,
) -> Broker:
    broker = broker_of(request)
    await _record(broker, auditor_query_event(auditor.actor, kind, filters, **extra))
    return broker


class HashRequest(BaseModel):
    data_source: str = Field(min_length=1, max_length=40)
    login: str = Field(min_length=1, max_length=MAX_LOGIN_LENGTH)


@router.post("/hash")
async def login_hash(body: HashRequest, request: Request, auditor: AuditorDep) -> JSONResponse:
    """The keyed hash the trail holds for this login at this data source."""
    try:
        message = login_hash_input(body.data_source, body.login)
    except InvalidAuditEvent as exc:
        raise InvalidRequest(str(exc)) from None
    await _count_lookup(broker_of(request), auditor)
    keys: KeyLayer = broker_of(request).keys
    digest = await keys.run_async(keys.keyed_hash, message)
    filters = TraceFilters(login_hash=digest, data_source=body.data_source)
    await _record_query(request, auditor, "hash", filters)
    return JSONResponse({"login_hash": digest, "data_source": body.data_source}, headers=NO_STORE)


def _filters(
    login_hash: str | None,
    client_id: str | None,
    data_source: str | None,
    since: str | None,
    until: str | None,
) -> TraceFilters:
    try:
        return TraceFilters.parse(
            login_hash=login_hash,
            client_id=client_id,
            data_source=data_source,
            since=since,
            until=until,
        )
    except InvalidAuditEvent as exc:
        raise InvalidRequest(str(exc)) from None


@router.get("/traces", response_model=None)
async def traces(
    request: Request,
    auditor: AuditorDep,
    login_hash: Annotated[str | None, Query(max_length=80)] = None,
    client_id: Annotated[str | None, Query(max_length=64)] = None,
    data_source: Annotated[str | None, Query(max_length=40)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    until: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
    format: Annotated[Literal["json", "csv", "jsonl"], Query()] = "json",
) -> JSONResponse | StreamingResponse:
    """Matching rows, oldest first: a page (`limit`, `offset`, `next_offset`) as JSON, or
    every matching row as CSV or JSON lines (`format=csv|jsonl`)."""
    filters = _filters(login_hash, client_id, data_source, since, until)
    await _count_lookup(broker_of(request), auditor)
    if format != "json":
        broker = await _record_query(request, auditor, "export", filters, format=format)
        return _export(broker.engine, filters, format)
    broker = await _record_query(request, auditor, "traces", filters, limit=limit, offset=offset)
    rows, more = await run_blocking(_page, broker.engine, filters, limit, offset)
    return JSONResponse(
        {
            "traces": [row.to_json() for row in rows],
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if more else None,
        },
        headers=NO_STORE,
    )


def _page(
    engine: Engine, filters: TraceFilters, limit: int, offset: int
) -> tuple[list[AuditRecord], bool]:
    """One page, and whether another follows."""
    rows = search_filtered(engine, filters, limit=limit, offset=offset)
    more = len(rows) == limit and bool(
        search_filtered(engine, filters, limit=1, offset=offset + limit)
    )
    return rows, more


def _export(
    engine: Engine, filters: TraceFilters, fmt: Literal["csv", "jsonl"]
) -> StreamingResponse:
    lines = export_lines(iter_matching(engine, filters), fmt)

    async def body() -> AsyncIterator[bytes]:
        # The rows are read on the database pool like every other query (a plain iterator
        # would be read on Starlette's thread pool), one batch of lines per hop.
        while chunk := await run_blocking(_next_chunk, lines):
            yield chunk

    return StreamingResponse(
        body(),
        media_type=MEDIA_TYPES[fmt],
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="audit-traces.{fmt}"'},
    )


def _next_chunk(lines: Iterator[str]) -> bytes:
    """The next `EXPORT_BATCH` lines, encoded; empty once the export is complete."""
    return "".join(islice(lines, EXPORT_BATCH)).encode("utf-8")


@router.get("/verify")
async def verify(request: Request, auditor: AuditorDep) -> JSONResponse:
    """The whole trail checked: chain, checkpoints and their signatures."""
    broker = await _record_query(request, auditor, "verify")
    keyring = await broker.keys.run_async(_signature_keyring, broker.keys)
    report = await run_blocking(verify_trail, broker.engine, keyring)
    return JSONResponse(report.to_json(), headers=NO_STORE)


def _signing_jwk(keys: KeyLayer) -> dict[str, Any] | None:
    try:
        return keys.signing_jwk()
    except KeyNotFound:
        return None


def _signature_keyring(keys: KeyLayer) -> dict[str, dict[str, Any]] | None:
    return keys.signature_keyring() or None


def _signing_history(keys: KeyLayer) -> list[dict[str, Any]]:
    return [
        {
            "jwk": k.jwk,
            "status": k.status,
            "created_at": k.created_at.isoformat(),
            "retired_at": k.retired_at.isoformat() if k.retired_at else None,
        }
        for k in keys.signing_keys()
    ]


@router.get("/checkpoints")
async def checkpoints(request: Request, auditor: AuditorDep) -> JSONResponse:
    """The signed checkpoints (JWS), for auditors to keep copies outside the broker."""
    broker = await _record_query(request, auditor, "checkpoint")
    listed = await run_blocking(read_checkpoints, broker.engine)
    jwk = await broker.keys.run_async(_signing_jwk, broker.keys)
    history = await broker.keys.run_async(_signing_history, broker.keys)
    body = {
        "checkpoints": [c.to_json() for c in listed],
        "signing_key": jwk,
        "signing_keys": history,
    }
    return JSONResponse(body, headers=NO_STORE)
