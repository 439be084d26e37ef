"""The optional account, with passkeys (docs/accounts.md): minimal data in SQL (the account,
its passkeys' public keys, its connected sources with their re-sync material sealed in the HSM,
its consents with dates), sessions and ceremony challenges sealed in Redis.

Public surface: `AccountService` (create, sign in, recover, add a passkey, sessions) with its
`Holdings` (overview, export, remove a passkey, revoke a source, delete, connect a source),
`AccountParts` (what they are built on) and `SignedIn`; `purge_unused_accounts` (retention);
`RelyingParty`; the Redis kinds (`ACCOUNT_KINDS`, `account_lifetimes`); the sealing of re-sync
material (`SourceBinding`, `seal_material`, `open_material`); `RememberedSources` (the offer
after a share, the one-click share), `SourceSync` and `sync_forever` (signing in with what
an account remembers; periodic re-syncs); the errors.
"""

from sharelock.accounts.ceremonies import KINDS as ACCOUNT_KINDS
from sharelock.accounts.ceremonies import lifetimes as account_lifetimes
from sharelock.accounts.context import AccountParts, SignedIn
from sharelock.accounts.errors import (
    AccountError,
    AccountItemNotFound,
    AccountsUnavailable,
    CeremonyExpired,
    CeremonyRefused,
    ForeignOrigin,
    InvalidRecoveryCode,
    LastPasskey,
    NotSignedIn,
    PasskeysUnavailable,
    RecoveryOnly,
    UnknownPasskey,
)
from sharelock.accounts.expiry import purge_unused_accounts
from sharelock.accounts.holdings import EXPORT_FORMAT, Holdings
from sharelock.accounts.material import (
    MaterialUnreadable,
    SourceBinding,
    open_material,
    seal_material,
)
from sharelock.accounts.passkeys import RelyingParty
from sharelock.accounts.remembered import RememberedSources
from sharelock.accounts.rows import account_ref
from sharelock.accounts.service import (
    MAX_HANDLE_LENGTH,
    MAX_LABEL_LENGTH,
    AccountService,
    Created,
    Started,
)
from sharelock.accounts.sync import SourceSync, sync_forever

__all__ = [
    "ACCOUNT_KINDS",
    "EXPORT_FORMAT",
    "MAX_HANDLE_LENGTH",
    "MAX_LABEL_LENGTH",
    "AccountError",
    "AccountItemNotFound",
    "AccountParts",
    "AccountService",
    "AccountsUnavailable",
    "CeremonyExpired",
    "CeremonyRefused",
    "Created",
    "ForeignOrigin",
    "Holdings",
    "InvalidRecoveryCode",
    "LastPasskey",
    "MaterialUnreadable",
    "NotSignedIn",
    "PasskeysUnavailable",
    "RecoveryOnly",
    "RelyingParty",
    "RememberedSources",
    "SignedIn",
    "SourceBinding",
    "SourceSync",
    "Started",
    "UnknownPasskey",
    "account_lifetimes",
    "account_ref",
    "open_material",
    "purge_unused_accounts",
    "seal_material",
    "sync_forever",
]
