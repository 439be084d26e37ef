"""Errors of the optional account, each with the JSON answer it gets (`web/account_routes`).

Messages are fixed text: never a credential id, a public key, a recovery code, an origin the
browser reported or anything else a request carried. A refused ceremony says why only as a
fixed code (`CeremonyRefused.reason`), for the logs and the tests.
"""

from __future__ import annotations

from sharelock.errors import ServiceUnavailable, SharelockError


class AccountError(SharelockError):
    """A request about an account refused; `status`, `error` and the message are the answer."""

    status = 400
    error = "invalid_request"


class PasskeysUnavailable(AccountError):
    """The broker's issuer is not a domain name (an IP address): WebAuthn has no relying
    party id to give, and browsers refuse passkeys there."""

    status = 503
    error = "passkeys_unavailable"


class CeremonyExpired(AccountError):
    """No passkey ceremony under this handle: never started, already used, or expired."""

    error = "ceremony_expired"


class CeremonyRefused(AccountError):
    """The browser's answer to a ceremony did not verify. `reason` is one of `REASONS`."""

    error = "passkey_refused"
    REASONS = (
        "malformed",
        "challenge",
        "origin",
        "rp_id",
        "user_presence",
        "user_verification",
        "signature",
        "sign_count",
        "algorithm",
        "attestation",
        "user_handle",
        "already_registered",
    )

    def __init__(self, reason: str) -> None:
        if reason not in self.REASONS:
            reason = "malformed"
        self.reason = reason
        super().__init__(f"the passkey's answer was refused ({reason})")


class UnknownPasskey(AccountError):
    """The passkey is not one of an account here (never registered, removed, or its account
    was deleted)."""

    error = "unknown_passkey"


class InvalidRecoveryCode(AccountError):
    """The recovery code is not one this broker holds (mistyped, used, or never issued)."""

    error = "invalid_recovery_code"


class NotSignedIn(AccountError):
    """No signed-in account in this browser (no session, or it ended)."""

    status = 401
    error = "not_signed_in"


class RecoveryOnly(AccountError):
    """Signed in with the recovery code: the only thing to do is add a new passkey."""

    status = 403
    error = "add_a_passkey_first"


class LastPasskey(AccountError):
    """The last passkey of an account whose recovery code is used up: removing it would lock
    the person out of their account for good."""

    status = 409
    error = "last_passkey"


class ForeignOrigin(AccountError):
    """A request that would change an account came from another site's page."""

    status = 403
    error = "forbidden"


class AccountItemNotFound(AccountError):
    """No such passkey or source in this account."""

    status = 404
    error = "not_found"


class AccountsUnavailable(AccountError, ServiceUnavailable):
    """The accounts' tables cannot be read or written (database down, read-only, …)."""

    status = 503
    error = "temporarily_unavailable"
