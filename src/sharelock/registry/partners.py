"""The partner registry: who may ask for data, where answers may go, and what they may ask.

A client secret is 32 random bytes shown once, when the partner is added; only its Argon2id
hash is stored, so a copy of the database does not let anyone act as a partner.
`authenticate` does the same Argon2 work whether or not the client exists, so response times
do not tell which client ids are registered.
"""

from __future__ import annotations

import builtins
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from sharelock.db.models import PartnerRow
from sharelock.registry import validation
from sharelock.registry.errors import RegistryUnavailable

log = logging.getLogger(__name__)

CLIENT_ID_PREFIX = "sl_"
MAX_CLIENT_ID_LENGTH = 64
MAX_SECRET_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Partner:
    """A registered partner as the rest of the broker sees it: no secret, no hash."""

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
        )


def new_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_urlsafe(16)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


class PartnerRegistry:
    """Partners in the SQL database. Synchronous; safe to share between threads."""

    def __init__(self, engine: Engine, hasher: PasswordHasher | None = None) -> None:
        self._engine = engine
        # argon2-cffi's default is Argon2id with RFC 9106's low-memory parameters.
        self._hasher = hasher or PasswordHasher()

    def __repr__(self) -> str:
        return f"PartnerRegistry(engine={self._engine!r})"

    @cached_property
    def _dummy_hash(self) -> str:
        """Verified against when the client is unknown, to spend the same time."""
        return self._hasher.hash(secrets.token_urlsafe(32))

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
        )
        secret = new_client_secret()
        row.client_secret_hash = self._hasher.hash(secret)
        try:
            with Session(self._engine, expire_on_commit=False) as session, session.begin():
                session.add(row)
        except SQLAlchemyError as exc:
            raise RegistryUnavailable(f"cannot store the partner: {type(exc).__name__}") from exc
        return Partner.from_row(row), secret

    def _row(self, client_id: str) -> PartnerRow | None:
        if not client_id or len(client_id) > MAX_CLIENT_ID_LENGTH:
            return None
        try:
            with Session(self._engine) as session:
                return session.scalar(select(PartnerRow).where(PartnerRow.client_id == client_id))
        except SQLAlchemyError as exc:
            raise RegistryUnavailable(
                f"cannot read the partner registry: {type(exc).__name__}"
            ) from exc

    def get(self, client_id: str, *, include_disabled: bool = False) -> Partner | None:
        """The partner with this client id; a disabled partner counts as unknown unless asked."""
        row = self._row(client_id)
        if row is None or (row.disabled and not include_disabled):
            return None
        return Partner.from_row(row)

    def list(self) -> builtins.list[Partner]:
        """Every partner, disabled ones included, oldest first."""
        try:
            with Session(self._engine) as session:
                rows = session.scalars(select(PartnerRow).order_by(PartnerRow.id)).all()
        except SQLAlchemyError as exc:
            raise RegistryUnavailable(
                f"cannot read the partner registry: {type(exc).__name__}"
            ) from exc
        return [Partner.from_row(row) for row in rows]

    def authenticate(self, client_id: str, secret: str) -> Partner | None:
        """The partner if this secret is its client secret, else None. Unknown and disabled
        clients cost one Argon2 verification too."""
        row = self._row(client_id)
        usable = row is not None and not row.disabled
        stored = row.client_secret_hash if row is not None and usable else self._dummy_hash
        candidate = secret if isinstance(secret, str) and len(secret) <= MAX_SECRET_LENGTH else ""
        if not self._verify(stored, candidate) or row is None or not usable:
            return None
        if self._hasher.check_needs_rehash(stored):
            self._rehash(row.client_id, candidate)
        return Partner.from_row(row)

    def _verify(self, stored: str, secret: str) -> bool:
        try:
            return self._hasher.verify(stored, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _rehash(self, client_id: str, secret: str) -> None:
        """Upgrade a hash made with older Argon2 parameters, now that the secret is at hand."""
        new_hash = self._hasher.hash(secret)
        try:
            with Session(self._engine) as session, session.begin():
                row = session.scalar(select(PartnerRow).where(PartnerRow.client_id == client_id))
                if row is not None:
                    row.client_secret_hash = new_hash
        except SQLAlchemyError as exc:
            # The partner did authenticate; the upgrade waits for its next call.
            log.warning("could not upgrade a client secret hash: %s", type(exc).__name__)
