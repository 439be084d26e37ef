"""What a whole share driven from outside needs to agree on (`tests/bench/bench_flow.py`,
`tests/cluster/load.py`): the sandbox person, the scopes asked, the partner's credentials, and
the check of every delivered payload (checked, not only counted)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from sharelock.registry import PartnerRegistry
from sharelock.scopes import SCOPES

REDIRECT_URI = "https://partner.example/callback"
SCOPE = "identity address bank_account"
DATA_SOURCE = "sandbox-bank"
CREDENTIALS = {"login": "alice", "password": "alice-pass"}
IBAN = "FR7699990000010001234567834"
GIVEN_NAME, FAMILY_NAME = "Alice", "Martin"


@dataclass(frozen=True)
class Partner:
    client_id: str
    client_secret: str

    @property
    def basic(self) -> str:
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def register_partner(engine: Engine, name: str, purpose: str) -> Partner:
    """The one partner a run drives shares for: every scope, `REDIRECT_URI`."""
    row, secret = PartnerRegistry(engine).add(
        name=name, redirect_uris=[REDIRECT_URI], scopes=list(SCOPES), purpose=purpose
    )
    return Partner(row.client_id, secret)


def check_payload(body: dict[str, Any], client_id: str) -> str | None:
    """What is wrong with a delivered payload, or None."""
    data = body.get("data") or {}
    identity = data.get("identity") or {}
    if body.get("client_id") != client_id:
        return "client_id"
    if body.get("data_source") != DATA_SOURCE:
        return "data_source"
    if sorted(body.get("scopes") or []) != sorted(SCOPE.split()) or set(data) != set(SCOPE.split()):
        return "scopes"
    if (data.get("bank_account") or {}).get("iban") != IBAN:
        return "iban"
    if identity.get("given_name") != GIVEN_NAME or identity.get("family_name") != FAMILY_NAME:
        return "identity"
    if not (data.get("address") or {}):
        return "address"
    return None
