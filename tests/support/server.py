"""Run the broker's ASGI app under uvicorn, over real HTTP on a free loopback port.

The server runs in a background thread of the test process, so it shares that process's
`KeyLayer` (and its HSM lock) with the test code. uvicorn installs signal handlers only in the
main thread, so nothing here touches the test runner's signals.

    with serve_broker(settings, key_layer) as server:
        httpx.get(server.url + "/healthz")
        httpx.get(server.operator_url + "/metrics")  # the operator listener

or, as a fixture in a test module:

    @pytest.fixture(scope="module")
    def broker(settings: Settings, key_layer: KeyLayer) -> Iterator[LiveServer]:
        with serve_broker(settings, key_layer) as server:
            yield server
"""

from __future__ import annotations

import faulthandler
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from sharelock.clock import SYSTEM_CLOCK, Clock
from sharelock.config import Settings
from sharelock.keys import KeyLayer
from sharelock.web.app import Listeners, create_app, create_operator_app

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LiveServer:
    """A running server: its base URL (no trailing slash) and the settings the app was given.
    `operator_url` is the operator listener (`/metrics`, probes) when one is served."""

    url: str
    port: int
    settings: Settings | None = None
    operator_url: str | None = None


def _bind_free_port(host: str) -> socket.socket:
    """A socket bound to a port the kernel chose; handing the bound socket itself to uvicorn
    leaves no window in which another process could take the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@contextmanager
def serve_app(app_for_url: Callable[[str], Any], *, host: str = LOOPBACK) -> Iterator[LiveServer]:
    """Serve the ASGI app that `app_for_url(base_url)` returns, until the block ends.

    The app is built once the port is known, so it can be told its own URL (the OAuth issuer).
    Raises `RuntimeError` if the server does not start (for instance, the app's lifespan fails).
    """
    with serve_sockets(lambda urls: app_for_url(urls[0]), 1, host=host) as urls:
        yield LiveServer(url=urls[0], port=_port_of(urls[0]))


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@contextmanager
def serve_sockets(
    app_for_urls: Callable[[list[str]], Any], count: int, *, host: str = LOOPBACK
) -> Iterator[list[str]]:
    """Serve one ASGI app on `count` free ports (one uvicorn server, as `sharelock serve` runs
    both of its listeners); `app_for_urls` gets the base URLs, in order, and so does the block.
    """
    socks = [_bind_free_port(host) for _ in range(count)]
    urls = [f"http://{host}:{sock.getsockname()[1]}" for sock in socks]
    url = urls[0]
    try:
        app = app_for_urls(urls)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,  # leave the test runner's logging (and caplog) alone
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(SHUTDOWN_TIMEOUT_S / 2),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": socks}, name=f"uvicorn-{url}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the server on {url} stopped during start-up (see the log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server on {url} did not start in {STARTUP_TIMEOUT_S} s")
            time.sleep(0.01)
        yield urls
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT_S)
        for sock in socks:
            sock.close()
        if thread.is_alive():
            # Where every thread is, for whoever reads the failure: a shutdown that hangs.
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            raise RuntimeError(f"the server on {url} did not stop")


@contextmanager
def serve_broker(
    settings: Settings,
    keys: KeyLayer,
    *,
    host: str = LOOPBACK,
    wrap: Callable[[Any], Any] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Iterator[LiveServer]:
    """Serve `create_app(settings, keys=keys)` with the issuer set to the server's own URL,
    and its operator app (`/metrics`, probes) on a second free port, `operator_url`, as
    `sharelock serve` does.

    `wrap`, if given, receives the broker's ASGI app and returns the app to serve (a test can
    add its own routes in front; the operator listener is not wrapped). The key layer is the
    caller's: the app's lifespan does not close it. `clock` is the broker's time (a test's
    clock moves instead of sleeping)."""
    served: dict[str, Settings] = {}

    def build(urls: list[str]) -> Any:
        public_url, operator_url = urls
        served["settings"] = settings.model_copy(
            update={"issuer": public_url, "operator_port": _port_of(operator_url)}
        )
        app = create_app(served["settings"], keys=keys, clock=clock)
        operator = create_operator_app(app)
        return Listeners(wrap(app) if wrap else app, operator, _port_of(operator_url))

    with serve_sockets(build, 2, host=host) as (url, operator_url):
        yield LiveServer(
            url=url,
            port=_port_of(url),
            settings=served["settings"],
            operator_url=operator_url,
        )
