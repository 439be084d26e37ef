"""Run the broker's ASGI app under uvicorn, over real HTTP on a free loopback port.

The server runs in a background thread of the test process, so it shares that process's
`KeyLayer` (and its HSM lock) with the test code. uvicorn installs signal handlers only in the
main thread, so nothing here touches the test runner's signals.

    with serve_broker(settings, key_layer) as server:
        httpx.get(server.url + "/healthz")

or, as a fixture in a test module:

    @pytest.fixture(scope="module")
    def broker(settings: Settings, key_layer: KeyLayer) -> Iterator[LiveServer]:
        with serve_broker(settings, key_layer) as server:
            yield server
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from sharelock.config import Settings
from sharelock.keys import KeyLayer
from sharelock.web.app import create_app

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LiveServer:
    """A running server: its base URL (no trailing slash) and the settings the app was given."""

    url: str
    port: int
    settings: Settings | None = None


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
    sock = _bind_free_port(host)
    port = sock.getsockname()[1]
    url = f"http://{host}:{port}"
    try:
        app = app_for_url(url)
    except BaseException:
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
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
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
        yield LiveServer(url=url, port=port)
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT_S)
        sock.close()
        if thread.is_alive():
            raise RuntimeError(f"the server on {url} did not stop")


@contextmanager
def serve_broker(
    settings: Settings,
    keys: KeyLayer,
    *,
    host: str = LOOPBACK,
    wrap: Callable[[Any], Any] | None = None,
) -> Iterator[LiveServer]:
    """Serve `create_app(settings, keys=keys)` with the issuer set to the server's own URL.

    `wrap`, if given, receives the broker's ASGI app and returns the app to serve (a test can
    add its own routes in front). The key layer is the caller's: the app's lifespan does not
    close it."""
    served: dict[str, Settings] = {}

    def build(url: str) -> Any:
        served["settings"] = settings.model_copy(update={"issuer": url})
        app = create_app(served["settings"], keys=keys)
        return wrap(app) if wrap else app

    with serve_app(build, host=host) as server:
        yield LiveServer(url=server.url, port=server.port, settings=served["settings"])
