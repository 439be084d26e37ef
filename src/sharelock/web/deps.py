"""The broker's parts as the HTTP layer sees them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from sharelock.config import Settings
from sharelock.keys import KeyLayer


@dataclass
class Broker:
    settings: Settings
    keys: KeyLayer

    def readiness_probes(self) -> dict[str, Callable[[], Awaitable[None]]]:
        async def hsm() -> None:
            await self.keys.run_async(self.keys.check)

        return {"hsm": hsm}


def broker_of(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker
