"""The tables: partners, the audit trail, the audit chain's head, its signed checkpoints, the
auditors' credentials, the credentials kept for corrective maintenance, and the optional account.

These classes are the storage shape only. Other packages hand out frozen dataclasses built
from them (`sharelock.registry.Partner`, `sharelock.audit.AuditRecord`), so an ORM row, with
its secret hash and its lazy session, never travels past the package that owns it.

The Alembic migrations in `sharelock/db/migrations/versions/` create exactly these tables; a
test compares the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sharelock.db.types import UTCDateTime

# Named constraints, so migrations and error handling can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("controller", "processor", "joint")
# Partner profiles: `fapi2` authenticates with private_key_jwt only and gets DPoP-bound tokens
# only; `basic` keeps client_secret_basic and bearer tokens (the sandbox, legacy clients).
FAPI2_PROFILE = "fapi2"
BASIC_PROFILE = "basic"
PROFILES = (FAPI2_PROFILE, BASIC_PROFILE)
# How `/v1/share` answers: plain JSON, a JWS signed in the HSM, or that JWS in a JWE encrypted
# to the partner's `use: enc` key.
DELIVERY_FORMATS = ("json", "jws", "jwe")
# The rights a person asks a partner to act on (`sharelock.rights`), and where such a request
# stands. Kept here beside the table's check constraints.
RIGHTS_REQUEST_KINDS = (
    "rectification",
    "erasure",
    "objection",
    "restriction",
    "withdrawal",
    "portability",
)
RIGHTS_REQUEST_STATUSES = ("open", "done", "refused")
GENESIS_HASH = "0" * 64

# On SQLite an INTEGER PRIMARY KEY is the rowid; BIGINT is what PostgreSQL should get.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class PartnerRow(Base):
    """A partner (online service) allowed to ask for data. Only the SHA-256 of its client
    secret is stored (`sha256:<hex>`; rows from before hold an Argon2id hash until the partner
    next authenticates); the secret itself is shown once, when added or rotated."""

    __tablename__ = "partners"
    __table_args__ = (CheckConstraint("role IN ('controller', 'processor', 'joint')", name="role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    client_secret_hash: Mapped[str] = mapped_column(String(255))
    redirect_uris: Mapped[list[str]]
    scopes: Mapped[list[str]]
    purpose: Mapped[str] = mapped_column(Text, default="")
    logo_url: Mapped[str | None] = mapped_column(String(2000))
    home_url: Mapped[str | None] = mapped_column(String(2000))
    jwks: Mapped[dict[str, Any] | None]
    jwks_uri: Mapped[str | None] = mapped_column(String(2000))
    role: Mapped[str] = mapped_column(String(16), default="controller")
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # PAR is required (FAPI 2.0): only a partner the operator registered as an exception may
    # send a plain authorization request to `/authorize`.
    par_exempt: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The partner's declared purpose includes identity verification: only then is the identity
    # data it receives kept, sealed, 72 h at most, for that verification (SPEC retention).
    identity_verification: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # How a person reaches the partner's data-protection officer (an address, a URL, a
    # postal address), shown on the rights page beside the partner's GDPR role.
    dpo_contact: Mapped[str | None] = mapped_column(String(400))
    # `fapi2` (private_key_jwt, DPoP-bound tokens) or `basic` (client_secret_basic, bearer
    # tokens): `sharelock.oauth.PROFILES`. Partners registered before profiles are `basic`.
    profile: Mapped[str] = mapped_column(String(16), default="basic", server_default="basic")
    # `DELIVERY_FORMATS`: `json`, `jws` or `jwe`.
    delivery_format: Mapped[str] = mapped_column(String(8), default="json", server_default="json")
    # Its authorization requests must come as signed request objects (JAR) at PAR.
    signed_requests: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Where the partner receives Security Event Tokens (`sharelock.webhooks`); None: none sent.
    webhook_url: Mapped[str | None] = mapped_column(String(2000))


class AuditEventRow(Base):
    """One audit event, pseudonymous fields only, linked to the previous row by hash.

    `id` is assigned by the writer from the chain head while it holds the chain lock, so ids
    are gap-free and a missing id is a deleted row. `delivery_key` (the code's hash) is set
    only on `data_delivered` rows and is unique: the database itself refuses a second
    delivery of the same code (SECURITY-CHECKLIST case 46)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_login_hash_at", "login_hash", "at"),
        Index("ix_audit_events_client_id_at", "client_id", "at"),
        Index("ix_audit_events_data_source_at", "data_source", "at"),
        Index("ix_audit_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(40))
    client_id: Mapped[str | None] = mapped_column(String(64))
    data_source: Mapped[str | None] = mapped_column(String(40))
    login_hash: Mapped[str | None] = mapped_column(String(80))
    flow_ref: Mapped[str | None] = mapped_column(String(128))
    browser_family: Mapped[str | None] = mapped_column(String(16))
    device_type: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(40))
    detail_code: Mapped[str | None] = mapped_column(String(40))
    delivery_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    actor: Mapped[str | None] = mapped_column(String(80))
    query: Mapped[str | None] = mapped_column(String(400))
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The single row (id = 1) naming the chain's last row, locked by every append.

    Locking this row (`SELECT … FOR UPDATE` on PostgreSQL; `BEGIN IMMEDIATE` on SQLite) is
    what serialises appends across processes, so the chain never forks. `anchor_*` name the
    last row removed by retention: verification starts from there instead of the genesis."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    anchor_id: Mapped[int] = mapped_column(BigInteger)
    anchor_hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpointRow(Base):
    """A signed statement of the chain's state: its head, its anchor and, after a retention
    run, which rows were purged. `jws` (ES256, the HSM signing key) is authoritative; the
    other columns mirror its payload for queries, and verification checks that they agree.
    Checkpoints hold no personal data and are never purged; each names the digest of the
    one before it, so a removed or altered checkpoint is detected too."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(16))
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    anchor_id: Mapped[int] = mapped_column(BigInteger)
    anchor_hash: Mapped[str] = mapped_column(String(64))
    purged: Mapped[int] = mapped_column(BigInteger)
    jws: Mapped[str] = mapped_column(Text)


class AuditorRow(Base):
    """An auditor's bearer credential. Only the SHA-256 of the token is stored (the token is
    256 random bits, so a plain digest is enough); the token is shown once, when added."""

    __tablename__ = "auditors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    auditor_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class MaintenanceCredentialsRow(Base):
    """Credentials a person allowed the broker to keep after a failed collection, so that
    engineers can repair the connector (SPEC, "Retention": 120 days at most).

    `sealed` is AES-GCM inside the HSM under the token's storage key, with additional data
    binding the row's id, data source, partner and expiry (`sharelock.maintenance`): never the
    clear credentials, never the browser's JWE (whose RSA key rotation destroys after its
    grace period). The other columns are pseudonymous, for listing and retention."""

    __tablename__ = "maintenance_credentials"
    __table_args__ = (Index("ix_maintenance_credentials_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    data_source: Mapped[str] = mapped_column(String(40))
    login_hash: Mapped[str] = mapped_column(String(80))
    client_id: Mapped[str] = mapped_column(String(64))
    flow_ref: Mapped[str] = mapped_column(String(128))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class RightsRequestRow(Base):
    """A person's request that only a partner can act on (rectification, objection,
    restriction, erasure of what it received, withdrawal of consent for what it received,
    forwarding of the export to another controller), tracked until the partner answers.

    Pseudonymous only: `subject_key` is the login's keyed hash (as in the audit trail) or, for
    a receipt without one, `flow:<flow_ref>`; never a login, a name or a value. `recipient`
    names the other controller of a portability request (an organisation, not the person);
    `fields` holds field names only (which data a rectification is about), never values.
    `deadline` is one month after `created_at` (GDPR Art. 12(3))."""

    __tablename__ = "rights_requests"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('rectification', 'erasure', 'objection', 'restriction', 'withdrawal',"
            " 'portability')",
            name="kind",
        ),
        CheckConstraint("status IN ('open', 'done', 'refused')", name="status"),
        Index("ix_rights_requests_client_id_status", "client_id", "status"),
        Index("ix_rights_requests_subject_key", "subject_key"),
        Index("ix_rights_requests_deadline", "deadline"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    subject_key: Mapped[str] = mapped_column(String(80))
    data_source: Mapped[str | None] = mapped_column(String(40))
    fields: Mapped[list[str]]
    recipient: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    deadline: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="open")
    answered_at: Mapped[datetime | None]


# -- the optional account (`sharelock.accounts`, docs/accounts.md) ------------------------------

# Why the account holds a consent (`account_consents.purpose`).
ACCOUNT_CONSENT_PURPOSES = ("account", "source", "sync")
# Where a connected source stands (`account_sources.status`).
ACCOUNT_SOURCE_STATUSES = ("connected", "failing")


class AccountRow(Base):
    """An optional account: a random id, when it was made and last used, and the SHA-256 of
    its one-time recovery code (128 random bits; None once used). No name, no e-mail, no
    login: the passkeys, sources and consents rows hang on it and go with it."""

    __tablename__ = "accounts"
    __table_args__ = (Index("ix_accounts_last_used_at", "last_used_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime]
    recovery_hash: Mapped[str | None] = mapped_column(String(64), unique=True)


class AccountPasskeyRow(Base):
    """A passkey of an account: the WebAuthn credential id (base64url), its COSE public key and
    the signature counter last seen (a counter going back is a cloned authenticator)."""

    __tablename__ = "account_passkeys"
    __table_args__ = (Index("ix_account_passkeys_account_id", "account_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger)
    transports: Mapped[list[str]]
    label: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class AccountSourceRow(Base):
    """A data source connected to an account: the login's keyed hash (the audit pseudonym) and
    the re-sync material sealed inside the HSM under its storage key, bound to this row
    (`sharelock.accounts.material`); never the material in clear."""

    __tablename__ = "account_sources"
    __table_args__ = (
        CheckConstraint("status IN ('connected', 'failing')", name="status"),
        Index("ix_account_sources_account_id", "account_id"),
        Index("ix_account_sources_login_hash", "login_hash"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    data_source: Mapped[str] = mapped_column(String(40))
    login_hash: Mapped[str] = mapped_column(String(80))
    sealed_material: Mapped[bytes | None] = mapped_column(LargeBinary)
    sync_consent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16), default="connected")
    created_at: Mapped[datetime]
    last_sync_at: Mapped[datetime | None]


class AccountConsentRow(Base):
    """A consent the account holder gave, with its dates: to the account itself, to keeping a
    source's re-sync material, to periodic re-syncs of a source."""

    __tablename__ = "account_consents"
    __table_args__ = (
        CheckConstraint("purpose IN ('account', 'source', 'sync')", name="purpose"),
        Index("ix_account_consents_account_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    purpose: Mapped[str] = mapped_column(String(16))
    data_source: Mapped[str | None] = mapped_column(String(40))
    given_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]
