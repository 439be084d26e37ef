"""`GET /metrics` (Prometheus). Labels are route templates, methods and status codes only:
never a concrete path (it would carry flow ids), a client id, a login or a value.

The router is served on the operator listener only (`sharelock.web.app.create_operator_app`):
per-route volumes are for the operator, not for whoever can reach the partner-facing API. The
counters are those of the public app, whose requests `observe` counts."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from sharelock.web import access_log
from sharelock.web.deps import broker_of

router = APIRouter()


class _HsmCollector(Collector):
    def __init__(self, calls: Callable[[], int]) -> None:
        self._calls = calls

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            "sharelock_hsm_operations", "PKCS#11 operations performed by this process"
        )
        family.add_metric([], self._calls())
        yield family


class Metrics:
    """One registry per app (so tests that build several apps do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sharelock_http_requests",
            "HTTP requests by route template, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "sharelock_http_request_duration_seconds",
            "HTTP request duration by route template",
            ("route",),
            registry=self.registry,
        )

    def watch_hsm(self, calls: Callable[[], int]) -> None:
        self.registry.register(_HsmCollector(calls))


def route_template(request: Request) -> str:
    """The matched route's template, as the access log names it."""
    return access_log.route_template(request.scope)


async def observe(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    metrics: Metrics = request.app.state.metrics
    started = time.perf_counter()
    response = await call_next(request)
    route = route_template(request)
    metrics.requests.labels(route, request.method, str(response.status_code)).inc()
    metrics.latency.labels(route).observe(time.perf_counter() - started)
    return response


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    broker_of(request)  # only once the broker is assembled
    metrics: Metrics = request.app.state.metrics
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
