"""What a connector is: it logs in to one data source for one person and collects their data.

A connector receives the clear credentials only for the duration of `login` (and the one-time
code only for `submit_otp`); it must not keep them anywhere once the call returns. Source
failures are typed outcomes, not free text, so the consent screen and the audit trail can say
what happened without repeating anything the source printed.

A source that "remembers the device" (`DataSourceInfo.remembers_device`) can hand over a device
token at login (`login(..., remember=True)` -> `CollectionResult.device_token`); the connector
then signs in with it alone (`RemembersDevice.resume`) and revokes it (`forget`). The token is a
credential: like the password it is never logged, never in a repr or an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Outcome(StrEnum):
    COLLECTED = "collected"
    OTP_REQUIRED = "otp_required"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_OTP = "invalid_otp"
    ACCOUNT_LOCKED = "account_locked"
    SOURCE_UNAVAILABLE = "source_unavailable"
    SOURCE_TIMEOUT = "source_timeout"
    INVALID_DATA = "invalid_data"
    # A document the source gave failed its checks (`sharelock.documents`): too large, not a
    # PDF, active content… `CollectionResult.detail` says which (`documents.Reason`).
    DOCUMENT_REFUSED = "document_refused"
    # The source no longer accepts the device token (revoked, expired, unknown, single use):
    # sign in with the credentials again.
    DEVICE_TOKEN_REVOKED = "device_token_revoked"  # noqa: S105 (an outcome, not a secret)


@dataclass(frozen=True, slots=True)
class DataSourceInfo:
    id: str
    name: str
    scopes: tuple[str, ...]
    login_label: str = "Login"  # what the source calls its login ("Tax number", …)
    login_pattern: str | None = None  # a regular expression the login must match, if any
    remembers_device: bool = False  # offers a device token to sign in again without password


@dataclass(repr=False, slots=True)
class CollectionResult:
    """The end of one collection attempt. `data` maps scope -> field -> value and is set only
    when `outcome` is COLLECTED. Its repr never shows the data."""

    outcome: Outcome
    data: dict[str, dict[str, str]] = field(default_factory=dict)
    # Opaque state to resume after a one-time code (e.g. the source's session cookie, sealed
    # by the store like any personal value). Never shown, never logged.
    resume_state: bytes | None = None
    # A short code saying more about a failure (for DOCUMENT_REFUSED: the reason), safe to
    # log and audit: never a value.
    detail: str | None = None
    # The device token the source minted at this login (`login(..., remember=True)`, or the
    # `submit_otp` that finished it): a credential, never shown, never logged.
    device_token: str | None = None

    def __repr__(self) -> str:
        return f"CollectionResult(outcome={self.outcome.value!r})"


@runtime_checkable
class Connector(Protocol):
    info: DataSourceInfo

    async def login(self, login: str, password: str, scopes: tuple[str, ...]) -> CollectionResult:
        """Log in and, unless the source asks for a one-time code, collect `scopes`."""
        ...

    async def submit_otp(
        self, resume_state: bytes, otp: str, scopes: tuple[str, ...]
    ) -> CollectionResult:
        """Finish a login that asked for a one-time code, then collect `scopes`."""
        ...

    async def aclose(self) -> None:
        """Release what the connector holds for all its attempts (its connection pool, kept
        open between collections so each one does not pay for a new pool and SSL context).
        The broker calls it once, when it stops; the connector is not used afterwards."""
        ...


@runtime_checkable
class RemembersDevice(Connector, Protocol):
    """A connector that can sign in again with a device token instead of the credentials.
    Whether a given source offers tokens is `info.remembers_device`; for one that does not,
    `login(remember=True)` gives no token and `resume` answers DEVICE_TOKEN_REVOKED."""

    async def login(
        self, login: str, password: str, scopes: tuple[str, ...], *, remember: bool = False
    ) -> CollectionResult:
        """As `Connector.login`; with `remember`, also ask the source for a device token
        (`result.device_token`, now or from the `submit_otp` that finishes the login).
        `scopes=()` checks the sign-in and collects nothing."""
        ...

    async def resume(self, device_token: str, scopes: tuple[str, ...]) -> CollectionResult:
        """Sign in with the device token and collect `scopes` as a login would (`()`: check
        only). DEVICE_TOKEN_REVOKED when the source no longer takes it."""
        ...

    async def forget(self, device_token: str) -> None:
        """Revoke the token at the source, best effort: never raises for the source's sake."""
        ...


ConnectorRegistry = Mapping[str, Connector]
