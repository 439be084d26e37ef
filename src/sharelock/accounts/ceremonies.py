"""What the accounts keep in Redis, sealed by the store like every record (`flow.Records`):
the challenges of passkey ceremonies, single use and short-lived, and the signed-in sessions.

Both are keyed by the SHA-256 of a bearer handle (the ceremony handle the page sends back, the
session cookie's value): a copy of Redis gives nothing a browser could present. A challenge is
taken (GETDEL) when the answer comes back, whatever the outcome, so it serves once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Literal

from sharelock.config import Retention
from sharelock.flow import Kind

Purpose = Literal["create", "add", "sign_in"]
# A little more than the browser's own timeout (`passkeys.CEREMONY_TIMEOUT_MS`).
CEREMONY_LIFETIME = timedelta(minutes=3)


@dataclass(frozen=True, slots=True, repr=False)
class Ceremony:
    """A passkey ceremony under way: its challenge (base64url), what it is for, the account
    it is for (`create`: the id the new account will have; `sign_in`: None) and the label the
    person gave the new passkey."""

    purpose: Purpose
    challenge: str
    account_id: str | None = None
    label: str = ""

    def __repr__(self) -> str:
        return f"Ceremony({self.purpose})"


@dataclass(frozen=True, slots=True, repr=False)
class AccountSession:
    """A signed-in browser: its account, and whether it came in with the recovery code (then
    it may only register a new passkey)."""

    account_id: str
    recovery: bool = False

    def __repr__(self) -> str:
        return f"AccountSession(recovery={self.recovery})"


def _dumps(value: Ceremony | AccountSession) -> bytes:
    return json.dumps(asdict(value), separators=(",", ":")).encode("utf-8")


def _loads(raw: bytes) -> dict[str, Any]:
    document = json.loads(raw.decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


CEREMONY: Kind[Ceremony] = Kind(
    "account-ceremony",
    "ceremony handle digest",
    "a passkey ceremony's challenge, what it is for and the account it is for: single use",
    CEREMONY_LIFETIME,
    dump=_dumps,
    load=lambda raw: Ceremony(**_loads(raw)),
)
SESSION: Kind[AccountSession] = Kind(
    "account-session",
    "session cookie digest",
    "a browser signed in to an account: the account's id",
    "account_session",
    dump=_dumps,
    load=lambda raw: AccountSession(**_loads(raw)),
)
KINDS: tuple[Kind[Any], ...] = (CEREMONY, SESSION)


def lifetimes(retention: Retention) -> list[dict[str, Any]]:
    """The accounts' Redis records, as `flow.lifetimes` lists the flow's."""
    return [
        {
            "kind": kind.name,
            "id": kind.id_is,
            "what": kind.what,
            "limit": kind.limit if isinstance(kind.limit, str) else None,
            "seconds": int(kind.lifetime(retention).total_seconds()),
        }
        for kind in KINDS
    ]
