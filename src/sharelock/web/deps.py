"""The broker as the HTTP layer reaches it: the one `Broker` the app's lifespan assembled
(`sharelock.broker`, the composition root)."""

from __future__ import annotations

from fastapi import Request

from sharelock.broker import Broker

__all__ = ["Broker", "broker_of"]


def broker_of(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker
