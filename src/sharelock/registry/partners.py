"""The partner registry: who may ask for data, where answers may go, and what they may ask.

A client secret is 256 random bits (`secrets.token_urlsafe(32)`), shown once: when the partner
is added or its secret rotated. Only its SHA-256 is stored, as `sha256:<64 hex digits>`, so a
copy of the database does not let anyone act as a partner. Salt and stretching would add
nothing: they slow down guessing a low-entropy, human-chosen password from its hash, and
nobody can guess 256 random bits, fast hash or not. A memory-hard password hash would only
make every wrong guess, from anyone, cost the broker tens of MiB and hundreds of milliseconds
of CPU. (Argon2 stays the tool for anything a human chooses; nothing here is.)

`authenticate` costs one SHA-256 and one constant-time comparison whatever the outcome:
for an unknown or disabled client it compares against a dummy digest, so neither response
times nor CPU use tell which client ids are registered.

Partners registered before this form hold an Argon2id hash (`$argon2id$…`). The first time
such a partner authenticates, its secret is verified with Argon2 once and its row rewritten in
the new form (verify-and-upgrade); `rotate_secret` (`sharelock partners rotate-secret`) moves
a partner off Argon2 at once. Legacy verifications run one at a time per process, and until a
partner is upgraded its slower answers do show that its client id is registered.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# argon2-cffi is a dependency for the legacy verify-and-upgrade path only (see `_verify_legacy`).
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from sharelock.db import PartnerRow, database_errors
from sharelock.registry import validation
from sharelock.registry.errors import InvalidPartner, RegistryError, RegistryUnavailable

log = logging.getLogger(__name__)

CLIENT_ID_PREFIX = "sl_"
MAX_CLIENT_ID_LENGTH = 64
# Real secrets are 43 characters; the cap keeps a hostile megabyte from being hashed at all.
MAX_SECRET_LENGTH = 512
MAX_CACHED_PARTNERS = 4096
DIGEST_PREFIX = "sha256:"
LEGACY_PREFIX = "$argon2"


class UnknownPartner(RegistryError, LookupError):
    """No partner has this client id."""


@dataclass(frozen=True, slots=True)
class Partner:
    """A registered partner as the rest of the broker sees it: no secret, no digest."""

    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    purpose: str
    role: str
    created_at: datetime
    logo_url: str | None = None
    home_url: str | None = None
    jwks: Mapping[str, Any] | None = field(default=None, hash=False)
    jwks_uri: str | None = None
    disabled: bool = False
    # Registered by the operator as an exception to "PAR required" (`partners add
    # --allow-plain-authorize`): may send a plain authorization request.
    par_exempt: bool = False
    # Declared purpose includes identity verification (`partners add --identity-verification`):
    # only then is the identity data it receives kept, 72 h at most, for that verification.
    identity_verification: bool = False
    # How a person reaches the partner's data-protection officer (`partners add
    # --dpo-contact`), shown on the rights page with the partner's role.
    dpo_contact: str | None = None
    # `fapi2` or `basic` (`sharelock.db.PROFILES`, `partners add --profile`).
    profile: str = "basic"
    # `json`, `jws` or `jwe` (`sharelock.db.DELIVERY_FORMATS`, `partners add --delivery`).
    delivery_format: str = "json"
    # Must send signed request objects (JAR) at PAR (`partners add --require-signed-requests`).
    signed_requests: bool = False
    # Where its Security Event Tokens go (`partners add --webhook-url`); None: no webhooks.
    webhook_url: str | None = None

    @classmethod
    def from_row(cls, row: PartnerRow) -> Partner:
        return cls(
            client_id=row.client_id,
            name=row.name,
            redirect_uris=tuple(row.redirect_uris),
            scopes=tuple(row.scopes),
            purpose=row.purpose,
            role=row.role,
            created_at=row.created_at,
            logo_url=row.logo_url,
            home_url=row.home_url,
            jwks=row.jwks,
            jwks_uri=row.jwks_uri,
            disabled=row.disabled,
            par_exempt=row.par_exempt,
            identity_verification=row.identity_verification,
            dpo_contact=row.dpo_contact,
            profile=row.profile,
            delivery_format=row.delivery_format,
            signed_requests=row.signed_requests,
            webhook_url=row.webhook_url,
        )


def new_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_urlsafe(16)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def secret_digest(secret: str) -> str:
    """The stored form of a client secret: `sha256:` and the SHA-256 of its UTF-8, in hex."""
    # "surrogatepass": a candidate taken from a hostile request may hold lone surrogates; this
    # still encodes it (one-to-one) instead of raising, and no real secret contains one.
    return DIGEST_PREFIX + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _matches(stored: str, candidate: str) -> bool:
    """One digest and one constant-time comparison, on every path through `authenticate`."""
    return hmac.compare_digest(secret_digest(candidate).encode(), stored.encode())


# What an unknown or disabled client's candidate is compared with, so that case costs the same
# digest and comparison as a registered one. Random per process: no candidate can match it.
_DUMMY_DIGEST = secret_digest(secrets.token_urlsafe(32))

# Verifies legacy rows only: `verify` takes its parameters from the stored hash.
_LEGACY_HASHER = PasswordHasher()
# At most one legacy Argon2 verification in flight per process (see `_verify_legacy`).
_LEGACY_SLOT = threading.BoundedSemaphore(1)


class PartnerRegistry:
    """Partners in the SQL database. Synchronous; safe to share between threads."""

    def __init__(
        self,
        engine: Engine,
        *,
        cache_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        # Every partner call (PAR, authorize, token, the consent page) looks its partner up;
        # a few seconds' memory of found rows saves most of those queries. Changes made by
        # another process (disable, rotate-secret) reach this one within `cache_seconds`.
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, PartnerRow]] = {}
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PartnerRegistry(engine={self._engine!r})"

    def add(
        self,
        name: str,
        redirect_uris: Iterable[str],
        scopes: Iterable[str],
        *,
        purpose: str = "",
        logo_url: str | None = None,
        home_url: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        jwks_uri: str | None = None,
        role: str = "controller",
        par_exempt: bool = False,
        identity_verification: bool = False,
        dpo_contact: str | None = None,
        profile: str = "basic",
        delivery_format: str = "json",
        signed_requests: bool = False,
        webhook_url: str | None = None,
    ) -> tuple[Partner, str]:
        """Register a partner; returns it and its client secret, which is never shown again.
        Raises `InvalidPartner` naming the first field that is wrong."""
        row = PartnerRow(
            client_id=new_client_id(),
            name=validation.text(name, "name", max_length=validation.MAX_NAME_LENGTH),
            redirect_uris=list(validation.redirect_uris(redirect_uris)),
            scopes=list(validation.scopes(scopes)),
            purpose=validation.text(
                purpose,
                "purpose",
                max_length=validation.MAX_PURPOSE_LENGTH,
                required=False,
                multiline=True,
            ),
            logo_url=validation.optional_url(logo_url, "logo_url"),
            home_url=validation.optional_url(home_url, "home_url"),
            jwks=validation.jwks(jwks, jwks_uri),
            jwks_uri=validation.optional_url(jwks_uri, "jwks_uri"),
            role=validation.role(role),
            created_at=datetime.now(UTC),
            disabled=False,
            par_exempt=par_exempt,
            identity_verification=identity_verification,
            dpo_contact=validation.dpo_contact(dpo_contact),
            profile=validation.profile(profile, jwks, jwks_uri, par_exempt),
            delivery_format=validation.delivery_format(delivery_format, jwks),
            signed_requests=validation.signed_requests(signed_requests, jwks),
            webhook_url=validation.webhook_url(webhook_url),
        )
        secret = new_client_secret()
        row.client_secret_hash = secret_digest(secret)
        with (
            database_errors(RegistryUnavailable, "cannot store the partner"),
            Session(self._engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            session.add(row)
        return Partner.from_row(row), secret

    def set_dpo_contact(self, client_id: str, contact: str | None) -> Partner:
        """Change (or, with None or blank, remove) how people reach the partner's
        data-protection officer. Raises `InvalidPartner` or `UnknownPartner`."""
        self._update(
            client_id, "cannot store the partner", dpo_contact=validation.dpo_contact(contact)
        )
        partner = self.get(client_id, include_disabled=True)
        assert partner is not None
        return partner

    def update(
        self, client_id: str, *, dpo_contact: str | None = None, webhook_url: str | None = None
    ) -> Partner:
        """Change the partner's data-protection contact and/or webhook URL (https, or http to a
        loopback host): None leaves a field as it is, "" removes it. Both are checked before
        either is stored. Events already queued go to the URL registered when they are sent.
        Raises `InvalidPartner` or `UnknownPartner`."""
        values: dict[str, object] = {}
        if dpo_contact is not None:
            values["dpo_contact"] = validation.dpo_contact(dpo_contact)
        if webhook_url is not None:
            values["webhook_url"] = validation.webhook_url(webhook_url)
        if not values:
            raise InvalidPartner("nothing to change: give a dpo contact and/or a webhook URL")
        self._update(client_id, "cannot store the partner", **values)
        partner = self.get(client_id, include_disabled=True)
        assert partner is not None
        return partner

    def rotate_secret(self, client_id: str) -> str:
        """A new client secret for this partner (disabled or not), stored in the current form
        and returned: it is never shown again. The old secret, legacy Argon2 or not, stops
        working at once. Raises `UnknownPartner`."""
        secret = new_client_secret()
        self._update(
            client_id, "cannot store the new secret", client_secret_hash=secret_digest(secret)
        )
        log.info("client secret rotated for partner %s", client_id)
        return secret

    def _update(self, client_id: str, failure: str, **values: object) -> None:
        """Set `values` on one partner's row and forget it from this process's cache;
        `UnknownPartner` if there is no such partner."""
        changed = 0
        if client_id and len(client_id) <= MAX_CLIENT_ID_LENGTH:
            with (
                database_errors(RegistryUnavailable, failure),
                self._engine.begin() as connection,
            ):
                changed = connection.execute(
                    update(PartnerRow).where(PartnerRow.client_id == client_id).values(**values)
                ).rowcount
        if not changed:
            raise UnknownPartner("no partner with that client id (see 'sharelock partners list')")
        self._forget(client_id)

    def _cached_row(self, client_id: str) -> PartnerRow | None:
        if self._cache_seconds <= 0:
            return None
        with self._cache_lock:
            cached = self._cache.get(client_id)
        if cached is not None and self._clock() < cached[0]:
            return cached[1]
        return None

    def from_cache(self, client_id: str) -> tuple[bool, Partner | None]:
        """`(True, partner)` when a fresh cached row answers `get(client_id)` without the
        database (the partner is None if disabled), `(False, None)` otherwise: for callers on
        an event loop, which then skip the hop to a database thread."""
        row = self._cached_row(client_id)
        if row is None:
            return False, None
        return True, None if row.disabled else Partner.from_row(row)

    def _row(self, client_id: str) -> PartnerRow | None:
        if not client_id or len(client_id) > MAX_CLIENT_ID_LENGTH:
            return None
        cached = self._cached_row(client_id)
        if cached is not None:
            return cached
        with (
            database_errors(RegistryUnavailable, "cannot read the partner registry"),
            Session(self._engine) as session,
        ):
            row = session.scalar(select(PartnerRow).where(PartnerRow.client_id == client_id))
        if row is not None and self._cache_seconds > 0:
            # Only rows that exist: a stranger's made-up client ids never fill the memory.
            with self._cache_lock:
                if len(self._cache) >= MAX_CACHED_PARTNERS:
                    self._cache.clear()
                self._cache[client_id] = (self._clock() + self._cache_seconds, row)
        return row

    def _forget(self, client_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(client_id, None)

    def get(self, client_id: str, *, include_disabled: bool = False) -> Partner | None:
        """The partner with this client id; a disabled partner counts as unknown unless asked."""
        row = self._row(client_id)
        if row is None or (row.disabled and not include_disabled):
            return None
        return Partner.from_row(row)

    def list(self) -> builtins.list[Partner]:
        """Every partner, disabled ones included, oldest first."""
        with (
            database_errors(RegistryUnavailable, "cannot read the partner registry"),
            Session(self._engine) as session,
        ):
            rows = session.scalars(select(PartnerRow).order_by(PartnerRow.id)).all()
        return [Partner.from_row(row) for row in rows]

    def authenticate(self, client_id: str, secret: str) -> Partner | None:
        """The partner if this secret is its client secret, else None. A wrong secret, an
        unknown client and a disabled one all cost the same: one SHA-256 and one comparison.
        A partner still on a legacy Argon2 hash is verified with Argon2 and upgraded."""
        row = self._row(client_id)
        candidate = secret if isinstance(secret, str) and len(secret) <= MAX_SECRET_LENGTH else ""
        if row is None or row.disabled:
            _matches(_DUMMY_DIGEST, candidate)  # the same work as below; the answer is no
            return None
        stored = row.client_secret_hash
        if stored.startswith(LEGACY_PREFIX):
            return self._authenticate_legacy(row, candidate)
        # An empty candidate (none given, or over the cap) is refused after the same work.
        if not _matches(stored, candidate) or not candidate:
            return None
        return Partner.from_row(row)

    def _authenticate_legacy(self, row: PartnerRow, candidate: str) -> Partner | None:
        """Verify-and-upgrade: a row still holding an Argon2 hash is verified with Argon2, and
        on success rewritten in the current form, so this partner's next call is cheap."""
        legacy = row.client_secret_hash
        if not candidate or not self._verify_legacy(row.client_id, legacy, candidate):
            return None
        self._upgrade(row.client_id, legacy, candidate)
        return Partner.from_row(row)

    @staticmethod
    def _verify_legacy(client_id: str, legacy: str, candidate: str) -> bool:
        """One Argon2 verification, if no other is running in this process; else False.

        Anyone can make the broker run Argon2 (64 MiB and hundreds of ms of CPU) by naming a
        partner still on a legacy hash, so at most one verification runs at a time: one core,
        64 MiB and one thread of the pool that all database work shares, however many
        requests come. A caller that finds the slot taken fails at once rather than waiting
        for it: waiting would let a flood of such requests park every thread of that shared
        pool behind the slot and stall everyone's database work, while failing costs only the
        legacy partner a retry while the flood lasts (its first success upgrades it for good,
        and `rotate_secret` ends the legacy state at once)."""
        if not _LEGACY_SLOT.acquire(blocking=False):
            log.warning(
                "legacy Argon2 client secret of partner %s not checked: another legacy check is"
                " running; 'sharelock partners rotate-secret' moves it to the current form",
                client_id,
            )
            return False
        try:
            return _LEGACY_HASHER.verify(legacy, candidate)
        except (VerificationError, InvalidHashError, UnicodeEncodeError):
            # Mismatch (VerifyMismatchError is a VerificationError), a damaged hash, or a
            # candidate with lone surrogates, which argon2-cffi cannot encode.
            return False
        finally:
            _LEGACY_SLOT.release()

    def _upgrade(self, client_id: str, legacy: str, secret: str) -> None:
        """Store the verified secret in the current form, in place of `legacy`; only if the
        row still holds `legacy`: a `rotate_secret` that ran meanwhile must not be undone,
        which would bring back the very secret the operator meant to retire."""
        try:
            with (
                database_errors(
                    RegistryUnavailable, "could not upgrade a legacy client secret hash"
                ),
                self._engine.begin() as connection,
            ):
                connection.execute(
                    update(PartnerRow)
                    .where(
                        PartnerRow.client_id == client_id,
                        PartnerRow.client_secret_hash == legacy,
                    )
                    .values(client_secret_hash=secret_digest(secret))
                )
        except RegistryUnavailable as exc:
            # The partner did authenticate; the upgrade waits for its next call.
            log.warning("%s", exc)
        else:
            self._forget(client_id)
            log.info("legacy Argon2 client secret of partner %s upgraded", client_id)
