"""The jobs `serve` runs on its own: retention (purge + signed checkpoint) and the expiry sweep."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from sharelock.audit import list_checkpoints, verify_trail
from sharelock.config import Retention
from sharelock.keys import KeyLayer
from tests.support.broker import Share, Stack, StackFactory
from tests.support.redis_server import RedisServer

DEADLINE_S = 20.0


@pytest.fixture
def stack(make_stack: StackFactory, redis_server: RedisServer, sandbox_url: str) -> Iterator[Stack]:
    with make_stack(
        redis_url=redis_server.url,
        sandbox_url=sandbox_url,
        retention=Retention(
            session=timedelta(seconds=2),
            authorization_code=timedelta(seconds=1),
            access_token=timedelta(seconds=1),
            pushed_request=timedelta(seconds=1),
            audit_trace=timedelta(seconds=2),
        ),
        retention_interval_seconds=0.5,
        expiry_sweep_seconds=0.3,
    ) as running:
        yield running


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"serve did not {what} within {DEADLINE_S} s"
        time.sleep(0.1)


def test_serve_sweeps_expired_flows_and_purges_old_rows(stack: Stack, key_layer: KeyLayer) -> None:
    abandoned = Share(stack)
    assert abandoned.start().status_code == 303
    assert stack.audit_rows("flow_started", flow_id=abandoned.flow_id)

    # The session cap passes: the sweep records the expiry ...
    _wait_for(lambda: stack.audit_rows("data_expired", flow_id=abandoned.flow_id), "sweep")
    # ... and once the rows are older than the audit limit, retention removes them.
    _wait_for(
        lambda: not stack.audit_rows("flow_started", flow_id=abandoned.flow_id), "purge old rows"
    )
    assert stack.engine is not None
    with stack.engine.connect() as connection:
        checkpoints = list_checkpoints(connection)
    assert checkpoints, "retention signs a checkpoint each run"
    report = verify_trail(stack.engine, key_layer.signing_jwk())
    assert report.ok, report.to_json()
