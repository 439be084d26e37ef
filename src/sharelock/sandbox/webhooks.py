"""A webhook receiver for partners to try (and tests to read): what a partner's endpoint for
Security Event Tokens (RFC 8935) does, in memory.

- `POST /webhooks/{name}`: receives a SET (`application/secevent+jwt`), keeps it, answers
  `202`; a SET whose `jti` was seen before is kept too, marked `duplicate` (a real receiver
  drops it: deliveries are at least once);
- `GET /webhooks/{name}`: what arrived, oldest first, each with its header and claims decoded
  but **not verified** (verify with the broker's `/.well-known/jwks.json`, as
  docs/partner-guide.md shows), and the receiver's mode;
- `POST /webhooks/{name}/up`, `/down` (answers `503`, so the broker retries), `/reject`
  (answers `400 {"err": "invalid_key"}`, a permanent refusal), `/hang` (keeps the request
  open until the mode changes or the client gives up);
- `DELETE /webhooks/{name}`: forgets it.

Like the rest of the sandbox it has no authentication: it holds fictitious events only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

MODES = ("up", "down", "reject", "hang")
MAX_RECEIVERS = 100
MAX_KEPT = 1000
MAX_BODY = 64 * 1024
HANG_LIMIT_S = 120.0
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


@dataclass
class Receiver:
    mode: str = "up"
    hanging: int = 0  # requests held open in `hang` mode right now
    received: list[dict[str, Any]] = field(default_factory=list)
    jtis: set[str] = field(default_factory=set)


@dataclass
class Receivers:
    by_name: dict[str, Receiver] = field(default_factory=dict)

    def get(self, name: str, *, create: bool = False) -> Receiver | None:
        receiver = self.by_name.get(name)
        if receiver is None and create and len(self.by_name) < MAX_RECEIVERS:
            receiver = self.by_name[name] = Receiver()
        return receiver


def _json_part(part: str) -> dict[str, Any] | None:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None


def describe(body: bytes, content_type: str | None) -> dict[str, Any]:
    """What arrived: the token as sent, and its header and claims decoded, unverified."""
    token = body.decode("ascii", "replace").strip()
    parts = token.split(".")
    header = _json_part(parts[0]) if parts else None
    claims = _json_part(parts[1]) if len(parts) == 3 else None  # a JWE's claims are sealed
    return {
        "received_at": time.time(),
        "content_type": content_type,
        "token": token,
        "header": header,
        "unverified_claims": claims,
        "jti": claims.get("jti") if claims else None,
        "events": sorted(claims.get("events", {})) if claims else [],
    }


def _unknown() -> JSONResponse:
    return JSONResponse(
        {"error": "not_found", "error_description": "no such webhook receiver"}, status_code=404
    )


def webhook_router() -> APIRouter:
    receivers = Receivers()
    router = APIRouter(prefix="/webhooks", include_in_schema=False)

    @router.post("/{name}")
    async def receive(name: str, request: Request) -> Response:
        receiver = receivers.get(name, create=True) if _NAME.fullmatch(name) else None
        if receiver is None:
            return _unknown()
        # Read first: afterwards, waiting on the connection can only see the client leave.
        body = await request.body()
        if receiver.mode == "hang":
            receiver.hanging += 1
            try:
                deadline = time.monotonic() + HANG_LIMIT_S
                while receiver.mode == "hang" and time.monotonic() < deadline:
                    if await request.is_disconnected():
                        return Response(status_code=499)
                    await asyncio.sleep(0.05)
            finally:
                receiver.hanging -= 1
        if receiver.mode == "down":
            return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)
        if receiver.mode == "reject":
            refusal = {"err": "invalid_key", "description": "the sandbox receiver refuses SETs"}
            return JSONResponse(refusal, status_code=400)
        if len(body) > MAX_BODY:
            return JSONResponse({"err": "invalid_request"}, status_code=400)
        arrival = describe(body, request.headers.get("content-type"))
        arrival["duplicate"] = arrival["jti"] is not None and arrival["jti"] in receiver.jtis
        if arrival["jti"] is not None:
            receiver.jtis.add(arrival["jti"])
        receiver.received = [*receiver.received, arrival][-MAX_KEPT:]
        return Response(status_code=202)

    @router.get("/{name}")
    async def show(name: str) -> JSONResponse:
        receiver = receivers.get(name)
        if receiver is None:
            return _unknown()
        return JSONResponse(
            {
                "name": name,
                "mode": receiver.mode,
                "hanging": receiver.hanging,
                "received": receiver.received,
            }
        )

    @router.post("/{name}/{mode}")
    async def set_mode(name: str, mode: str) -> JSONResponse:
        receiver = receivers.get(name, create=True) if _NAME.fullmatch(name) else None
        if receiver is None:
            return _unknown()
        if mode not in MODES:
            return JSONResponse(
                {"error": "invalid_request", "error_description": f"mode: one of {MODES}"},
                status_code=400,
            )
        receiver.mode = mode
        return JSONResponse({"name": name, "mode": mode})

    @router.delete("/{name}")
    async def forget(name: str) -> Response:
        receivers.by_name.pop(name, None)
        return Response(status_code=204)

    return router
