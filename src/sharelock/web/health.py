"""Operator probes: `/healthz` (the process answers) and `/readyz` (its backing services do).

Served on both listeners: the public one (a load balancer in front of the API checks it) and
the operator one (`sharelock.web.app.create_operator_app`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sharelock.errors import ServiceUnavailable
from sharelock.web.deps import broker_of

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    broker = broker_of(request)
    checks: dict[str, str] = {}
    for name, probe in broker.readiness_probes().items():
        try:
            await probe()
            checks[name] = "ok"
        except ServiceUnavailable:
            checks[name] = "unavailable"
    ready = all(state == "ok" for state in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )
