"""`sharelock demo`: the broker, the sandbox data sources and a demo partner on one machine.

Everything runs in one process and one event loop (three uvicorn servers), plus a private
redis-server when `SHARELOCK_REDIS_URL` is unset; Ctrl-C stops all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from sharelock.broker import OperatorTools
from sharelock.config import Settings
from sharelock.db import create_engine_for, migrate
from sharelock.demo.headless import HeadlessResult, run_share
from sharelock.demo.partner_site import PartnerConfig, create_partner_app
from sharelock.embedded import redis_url_for
from sharelock.keys import KeyLayer, init_token, is_softhsm
from sharelock.sandbox import create_sandbox_app
from sharelock.scopes import SCOPES
from sharelock.web import create_app

DEMO_PARTNER_NAME = "Demo Shop"


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the demo (one Ctrl-C stops all)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def prepare(settings: Settings) -> None:
    """Token, keys and database, idempotently. A token other than SoftHSM (a network HSM) is
    the operator's to initialise: only its keys are ensured here."""
    if is_softhsm(settings):
        init_token(settings)
    keys = KeyLayer(settings)
    try:
        keys.ensure_keys()
    finally:
        keys.close()
    engine = create_engine_for(settings)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def demo_partner(settings: Settings) -> PartnerConfig:
    """The demo partner's registration, made once and kept in an owner-only file."""
    redirect_uri = f"http://127.0.0.1:{settings.demo_partner_port}/callback"
    path: Path = settings.state_path / "demo-partner.json"
    with OperatorTools.open(settings) as tools:
        registry = tools.partners
        if path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            known = registry.get(saved["client_id"])
            if known is not None and redirect_uri in known.redirect_uris:
                if known.webhook_url != demo_webhook_url(settings):
                    registry.update(known.client_id, webhook_url=demo_webhook_url(settings))
                return PartnerConfig(
                    settings.issuer,
                    saved["client_id"],
                    saved["client_secret"],
                    redirect_uri,
                    DEMO_PARTNER_NAME,
                )
        partner, secret = registry.add(
            name=DEMO_PARTNER_NAME,
            redirect_uris=[redirect_uri],
            scopes=list(SCOPES),
            purpose="Open a customer account, with identity verification (demonstration)",
            home_url=f"http://127.0.0.1:{settings.demo_partner_port}/",
            identity_verification=True,
            webhook_url=demo_webhook_url(settings),
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"client_id": partner.client_id, "client_secret": secret}, handle)
    return PartnerConfig(
        settings.issuer, partner.client_id, secret, redirect_uri, DEMO_PARTNER_NAME
    )


def demo_webhook_url(settings: Settings) -> str:
    """The demo partner's webhook: the sandbox's receiver (`GET` it to see the events)."""
    return f"{settings.sandbox_url}/webhooks/demo-shop"


def _servers(settings: Settings, partner: PartnerConfig) -> list[_Server]:
    def server(app: Any, port: int) -> _Server:
        # `log_config=None`: the JSON logging `sharelock demo` set up (`sharelock.logs`) stays,
        # and uvicorn's access log (raw request lines, flow ids in them) stays off.
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            log_config=None,
            access_log=False,
        )
        return _Server(config)

    return [
        server(create_sandbox_app(), settings.sandbox_port),
        server(create_partner_app(partner), settings.demo_partner_port),
        server(create_app(settings), settings.port),
    ]


async def _serve(servers: list[_Server], headless: dict[str, Any] | None) -> HeadlessResult | None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for s in servers:
            s.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop)
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks):
            stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise RuntimeError("a demo server could not start (is its port already in use?)")
        await asyncio.sleep(0.05)
    result = None
    if headless is not None:
        try:
            result = await asyncio.to_thread(lambda: run_share(**headless))
        finally:
            stop()
    await asyncio.gather(*tasks)
    return result


def run_demo(settings: Settings, *, headless: bool, on_ready: Any = print) -> HeadlessResult | None:
    if (
        "SHARELOCK_ISSUER" not in os.environ
        and settings.issuer == f"http://127.0.0.1:{settings.port}"
    ):
        # Passkeys (the optional account) refuse an IP address as the relying party's id:
        # the demo's broker is named `localhost`, which browsers treat as a secure context.
        settings = settings.model_copy(update={"issuer": f"http://localhost:{settings.port}"})
    prepare(settings)
    with redis_url_for(settings) as redis_url:
        if redis_url is not None:  # None: Sentinels, already in the settings
            settings = settings.model_copy(update={"redis_url": redis_url})
        partner = demo_partner(settings)
        servers = _servers(settings, partner)
        options = None
        if headless:
            options = {
                "broker_url": settings.issuer,
                "client_id": partner.client_id,
                "client_secret": partner.client_secret,
                "redirect_uri": partner.redirect_uri,
            }
        else:
            on_ready(settings, partner)
        return asyncio.run(_serve(servers, options))
