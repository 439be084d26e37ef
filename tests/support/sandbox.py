"""Run the sandbox data sources over real HTTP on a free loopback port, in a background thread.

    with serve_sandbox(slow_seconds=3) as base_url:
        connectors = build_connectors(settings, base_url=base_url)

or, as a fixture in a test module:

    @pytest.fixture(scope="module")
    def sandbox_url() -> Iterator[str]:
        with serve_sandbox() as url:
            yield url

`set_mode(base_url, "sandbox-bank", "down")` drives the control endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from sharelock.sandbox import create_sandbox_app
from tests.support.server import serve_app

TEST_SLOW_SECONDS = 3.0


@contextmanager
def serve_sandbox(slow_seconds: float = TEST_SLOW_SECONDS) -> Iterator[str]:
    """Serve a fresh sandbox (all sources up, no sessions) and yield its base URL.

    `slow_seconds` is short by default so that a test that does wait for the slow user is not
    slow itself; connectors under test use a shorter timeout still."""
    with serve_app(lambda _url: create_sandbox_app(slow_seconds=slow_seconds)) as server:
        yield server.url


def set_mode(base_url: str, source: str, mode: str) -> None:
    """Switch a whole sandbox source "up", "down", "slow" or "garbage"."""
    response = httpx.post(f"{base_url}/_control/{source}", json={"mode": mode}, timeout=5)
    response.raise_for_status()


@contextmanager
def source_mode(base_url: str, source: str, mode: str) -> Iterator[None]:
    """A source in `mode` for the duration of the block, back up afterwards."""
    set_mode(base_url, source, mode)
    try:
        yield
    finally:
        set_mode(base_url, source, "up")
