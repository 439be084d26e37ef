"""Pseudonymous logins: the keyed hash that audit rows carry instead of a login.

The HMAC key stays in the HSM (`KeyLayer.keyed_hash`), so the trail alone cannot be reversed
by hashing guessed logins, while an auditor who knows a login can ask the broker for its hash
and search by it. The input is normalised so that "Alice " and "alice" are the same person,
and bound to the data source so the same login at two sources gives two pseudonyms.
"""

from __future__ import annotations

import unicodedata
from typing import Protocol

from sharelock.audit.errors import InvalidAuditEvent
from sharelock.audit.events import DATA_SOURCE


class KeyedHasher(Protocol):
    def keyed_hash(self, message: bytes) -> str: ...


def normalise_login(login: str) -> str:
    """NFKC, case-folded, trimmed: the form every caller hashes.

    Case folding can leave a string that is no longer NFKC, hence the second NFKC; trimming
    comes last because NFKC turns some exotic spaces into plain ones."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", login).casefold())
    return folded.strip()


def login_hash_input(data_source: str, login: str) -> bytes:
    """`data_source + NUL + normalised login`, UTF-8: what `keyed_hash` is computed over."""
    if not DATA_SOURCE.fullmatch(data_source):
        raise InvalidAuditEvent("data_source: must be a data source id ([a-z0-9_-])")
    normalised = normalise_login(login)
    if not normalised:
        raise InvalidAuditEvent("login: empty after normalisation")
    return (data_source + "\x00" + normalised).encode("utf-8")


def login_hash(hasher: KeyedHasher, data_source: str, login: str) -> str:
    """The audit pseudonym of this login at this data source (`hmac-sha256:<hex>`)."""
    return hasher.keyed_hash(login_hash_input(data_source, login))
