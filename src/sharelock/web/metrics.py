"""`GET /metrics` (Prometheus). Labels are route templates, methods, status codes, data source
ids, outcomes and limit names only: never a concrete path (it would carry flow ids), a client
id, a login or a value.

The router is served on the operator listener only (`sharelock.web.app.create_operator_app`):
per-route volumes are for the operator, not for whoever can reach the partner-facing API.

Several workers: `sharelock serve` points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory
before any worker starts; prometheus-client then keeps every value in a file per process, and
a scrape, answered by whichever worker the operator's connection reaches, adds them all up
(`MultiProcessCollector`). Without it (one process, the tests), each app has its own registry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sharelock.web import access_log
from sharelock.web.deps import broker_of

router = APIRouter()

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Latency buckets for steps that take milliseconds (an API call) to seconds (a collection).
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    path = os.environ.get(MULTIPROCESS_ENV)
    return path if path and Path(path).is_dir() else None


class Metrics:
    """The broker's metrics. One registry per app (so tests that build several apps do not
    collide); in multiprocess mode the values live in files whatever the registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sharelock_http_requests",
            "HTTP requests by route template (the step), method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "sharelock_http_request_duration_seconds",
            "HTTP request duration by route template (the step)",
            ("route",),
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.hsm_operations = Counter(
            "sharelock_hsm_operations", "PKCS#11 operations performed", registry=self.registry
        )
        self.rate_limited = Counter(
            "sharelock_rate_limited",
            "Requests refused by a rate limit",
            ("limit",),
            registry=self.registry,
        )
        self.collections = Counter(
            "sharelock_collections",
            "Collections by data source and outcome",
            ("data_source", "outcome"),
            registry=self.registry,
        )
        self.collection_latency = Histogram(
            "sharelock_collection_duration_seconds",
            "Time the data source took to log in and answer, by data source",
            ("data_source",),
            buckets=STEP_BUCKETS,
            registry=self.registry,
        )
        self.deliveries = Counter(
            "sharelock_deliveries",
            "Shares delivered to partners, by data source",
            ("data_source",),
            registry=self.registry,
        )
        self._hsm_calls: Callable[[], int] | None = None
        self._hsm_seen = 0
        # The labelled children each request updates, found once per label set (bounded:
        # route templates, methods, status codes) rather than by `labels()` every time.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count and time one request."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def watch_hsm(self, calls: Callable[[], int]) -> None:
        self._hsm_calls = calls
        self._hsm_seen = calls()

    def sync_hsm(self) -> None:
        """Move the HSM counter to the key layer's own count (cheap: one subtraction)."""
        if self._hsm_calls is not None:
            calls = self._hsm_calls()
            if calls > self._hsm_seen:
                self.hsm_operations.inc(calls - self._hsm_seen)
                self._hsm_seen = calls

    def collection(self, data_source: str, outcome: str, seconds: float) -> None:
        self.collections.labels(data_source, outcome).inc()
        self.collection_latency.labels(data_source).observe(seconds)

    def delivered(self, data_source: str) -> None:
        self.deliveries.labels(data_source).inc()

    def refused(self, limit: str) -> None:
        self.rate_limited.labels(limit).inc()

    def exposition(self) -> bytes:
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


class Observe:
    """Pure ASGI middleware: counts and times each request by its route template (known once
    routed, read back from the scope when the response starts)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics: Metrics = scope["app"].state.metrics
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = access_log.route_template(scope)
            method = scope["method"] if scope["method"] in access_log.METHODS else "OTHER"
            metrics.request_done(route, method, status, time.perf_counter() - started)
            metrics.sync_hsm()


def route_template(request: Request) -> str:
    """The matched route's template, as the access log names it."""
    return access_log.route_template(request.scope)


@router.get("/metrics")
async def metrics_endpoint(request: Request) -> Response:
    broker_of(request)  # only once the broker is assembled
    metrics: Metrics = request.app.state.metrics
    metrics.sync_hsm()
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
