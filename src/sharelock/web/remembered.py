"""What the consent API says of the optional account (docs/accounts.md): the `account` block
of `GET /api/flows/{id}` and whether the decision's offer to remember the source finds an
account signed in; the signed-in account for `remember_routes`."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from sharelock.accounts import NotSignedIn, SignedIn
from sharelock.flow import FlowState
from sharelock.web.account_routes import read_account_session
from sharelock.web.deps import broker_of


async def signed_in(request: Request) -> SignedIn | None:
    broker = broker_of(request)
    if not broker.accounts.available:
        return None
    return await broker.accounts.signed_in(read_account_session(request, broker.settings))


async def signed_in_required(request: Request) -> SignedIn:
    signed = await signed_in(request)
    if signed is None:
        raise NotSignedIn("no account is signed in in this browser")
    return signed


async def account_block(request: Request, flow: FlowState) -> dict[str, Any]:
    """What the source-choice step shows of the account: whether passkeys work here, whether
    this browser is signed in, and its sources able to provide this share's data."""
    broker = broker_of(request)
    signed = await signed_in(request)
    sources = [] if signed is None else await broker.remembered.for_flow(signed, flow)
    return {
        "available": broker.accounts.available,
        "signed_in": signed is not None,
        "sources": sources,
    }


async def offer_signed_in(request: Request, answer: dict[str, Any]) -> None:
    """The decision's offer to remember the source says whether an account is signed in."""
    offer = answer.get("remember_offer")
    if isinstance(offer, dict):
        offer["signed_in"] = await signed_in(request) is not None
