"""Limits by client address, applied before any route runs (`Settings.limits`).

- `per_address`: every request to the person-facing endpoints (authorization, consent screen
  and its API, rights) counts.
- `rights_per_address`: rights requests count again, against a much smaller budget: each one
  costs an HSM operation and audit rows, and a fast loop over them would be an enumeration.
- `failed_auth_per_address`: at the partner and auditor endpoints only failures count (a
  wrong client secret, a bad assertion, an unknown bearer token; `record_failed_auth`, called
  from the error mapping). Once spent, the address is refused before any authentication work,
  so a stranger cannot make the broker verify credentials at will; an authenticated partner's
  traffic is bounded by its own per-partner limits instead, never by its address.

The client address is the peer's, unless the peer is one of `Settings.trusted_proxies`: then
it is the right-most `X-Forwarded-For` entry that is not a trusted proxy (entries further
left were written by the client itself and prove nothing). IPv6 addresses count by /64, the
block one subscriber usually holds. Addresses reach Redis only as HMACs (`RateLimiter`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from sharelock.audit import EventType
from sharelock.errors import ServiceUnavailable
from sharelock.ratelimit import LimitName, RateLimited
from sharelock.web.deps import Broker
from sharelock.web.errors import limited_response, unavailable_response

log = logging.getLogger("sharelock.web.throttle")

PERSON_PREFIXES = (
    "/authorize",
    "/consent/",
    "/api/flows/",
    "/rights",
    "/api/rights/",
    "/account",  # the optional account: its pages and "/api/account/…"
    "/api/account/",
)
RIGHTS_PREFIX = "/api/rights/"
AUTHENTICATED_PREFIXES = ("/par", "/token", "/v1/share", "/audit/")
ADDRESS_STATE = "client_address"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The address a limit counts by (see the module's docstring)."""
    address = _parse(peer or "")
    if address is not None and forwarded_for and any(address in net for net in trusted):
        for entry in reversed(forwarded_for.split(",")):
            hop = _parse(entry)
            if hop is None:
                break  # a malformed hop: believe nothing further left
            address = hop
            if not any(hop in net for net in trusted):
                break
    if address is None:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _header(scope: Scope, name: bytes) -> str | None:
    values = [value for key, value in scope["headers"] if key == name]
    return ",".join(v.decode("latin-1") for v in values) if values else None


def _limits_for(path: str) -> list[LimitName]:
    if path.startswith(PERSON_PREFIXES):
        names: list[LimitName] = ["per_address"]
        if path.startswith(RIGHTS_PREFIX):
            names.append("rights_per_address")
        return names
    if path.startswith(AUTHENTICATED_PREFIXES):
        return ["failed_auth_per_address"]
    return []


class AddressLimits:
    """Pure ASGI middleware (no per-request task or body buffering): it only decides whether
    the request may go on."""

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str]) -> None:
        self.app = app
        self.trusted = trusted_networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        address = client_address(
            peer[0] if peer else None, _header(scope, b"x-forwarded-for"), self.trusted
        )
        scope.setdefault("state", {})[ADDRESS_STATE] = address
        names = _limits_for(scope["path"])
        broker: Broker | None = (
            getattr(scope["app"].state, "broker", None) if "app" in scope else None
        )
        if names and broker is not None:
            try:
                for name in names:
                    if name == "failed_auth_per_address":
                        await broker.limiter.check(name, address)
                    else:
                        await broker.limiter.hit(name, address)
            except RateLimited as refused:
                if refused.limit == "rights_per_address":
                    await _audit_person_refusal(broker, refused, address)
                await limited_response(Request(scope), refused)(scope, receive, send)
                return
            except ServiceUnavailable as exc:
                await unavailable_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _audit_person_refusal(broker: Broker, refused: RateLimited, address: str) -> None:
    """A person stopped at the rights endpoints: one audit row per window and address."""
    try:
        if await broker.limiter.first_refusal(refused.limit, address):
            await broker.audit.record(
                EventType.RATE_LIMITED,
                actor="person",
                outcome="refused",
                detail_code=refused.limit,
            )
    except ServiceUnavailable:
        log.warning("a rate-limit refusal could not be audited")


async def record_failed_auth(request: Request) -> None:
    """Count a failed client or token authentication against the caller's address. Called
    while answering 401; a Redis failure here changes nothing in that answer."""
    broker: Broker | None = getattr(request.app.state, "broker", None)
    address = request.scope.get("state", {}).get(ADDRESS_STATE)
    if broker is None or address is None:
        return
    try:
        await broker.limiter.hit("failed_auth_per_address", address)
    except RateLimited:
        pass  # already spent: the next request is refused before any work
    except ServiceUnavailable:
        log.warning("a failed authentication could not be counted")
