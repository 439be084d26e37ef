"""The values the broker keeps in Redis, as types (`sharelock.flow.kinds` gives each its
kind: key, lifetime, encoding). Their reprs never show personal data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sharelock.oauth import TokenGrant

Data = dict[str, dict[str, str]]  # scope -> field -> value


@dataclass(frozen=True, slots=True, repr=False)
class RememberOffer:
    """After a collection with a password, what would let an account re-sync the source, kept
    within the session for the person's answer to "remember this source" (docs/accounts.md):
    the source's device token when it gave one, otherwise the credential JWE as received
    (opened in the HSM only if the person says yes)."""

    data_source: str
    login_hash: str
    device_token: str | None = None
    envelope: str | None = None

    def __repr__(self) -> str:
        return f"RememberOffer(data_source={self.data_source!r})"


@dataclass(frozen=True, slots=True, repr=False)
class CollectedData:
    """What a connector collected, awaiting the person's review."""

    data: Data
    collected_at: float | None = None  # when the data source was read (the evidence's time)
    # The answers to the partner's checks (`sharelock.flow.checking`), in the request's order.
    checks: list[dict[str, Any]] = field(default_factory=list)
    # Identity verification, when the partner asked it (`sharelock.flow.identity_check`):
    # {"consent": bool | None, "evidence": IA evidence | None}. Never an image.
    identity: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return "CollectedData(…)"


@dataclass(frozen=True, slots=True, repr=False)
class MaintenanceOffer:
    """A failed collection's JWE, kept within the session for the person's answer to keeping
    their credentials for the connector's maintenance."""

    envelope: str
    data_source: str
    login_hash: str
    outcome: str

    def __repr__(self) -> str:
        return f"MaintenanceOffer(data_source={self.data_source!r})"


@dataclass(frozen=True, slots=True, repr=False)
class Release:
    """What the person approved, awaiting the partner's one delivery."""

    data: Data
    data_source: str | None
    scopes: list[str]
    # The partner verifies identity (`Partner.identity_verification`): only then is the
    # identity data kept after the delivery, 72 h at most.
    keep_identity: bool = False
    collected_at: float | None = None  # when the data source was read
    # The checks' answers as the partner receives them (declined ones without a result).
    checks: list[dict[str, Any]] = field(default_factory=list)
    # The identity verification's OpenID IA evidence (`IdentityEvidence.to_claims`), or the
    # person's refusal (`{"declined": true}`); None when the partner did not ask for it.
    identity_verification: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Release(data_source={self.data_source!r}, scopes={self.scopes!r})"


@dataclass(frozen=True, slots=True, repr=False)
class Delivering:
    """An approved share claimed by a delivery, until its `data_delivered` row: what the
    partner's retry with the same token needs if that delivery failed in between."""

    grant: TokenGrant
    release: Release

    def __repr__(self) -> str:
        return f"Delivering(client_id={self.grant.client_id!r})"


@dataclass(frozen=True, slots=True, repr=False)
class IdentityKept:
    """Identity data kept for identity verification, by the flow's audit reference."""

    identity: dict[str, str]

    def __repr__(self) -> str:
        return "IdentityKept(…)"


@dataclass(frozen=True, slots=True, repr=False)
class HeldIdentity:
    """The identity the data source gave, kept (sealed) only until the verification compares
    the document with it: names and birthdate (ISO date, or empty)."""

    given_name: str
    family_name: str
    birthdate: str

    def __repr__(self) -> str:
        return "HeldIdentity(…)"


@dataclass(frozen=True, slots=True, repr=False)
class IdentityImages:
    """The live frames' JWEs as received from the browser, until the verification opens them."""

    envelopes: list[str]

    def __repr__(self) -> str:
        return f"IdentityImages({len(self.envelopes)})"


@dataclass(frozen=True, slots=True)
class RightsProof:
    """A person proved control of this login at this data source (`sharelock.rights`)."""

    data_source: str
    login_hash: str


@dataclass(frozen=True, slots=True, repr=False)
class RightsPending:
    """A proof waiting for the data source's one-time code: the connector's resume state."""

    data_source: str
    login_hash: str
    resume: str  # base64 of the connector's opaque resume state
    attempts: int = 0

    def __repr__(self) -> str:
        return f"RightsPending(data_source={self.data_source!r}, attempts={self.attempts})"
