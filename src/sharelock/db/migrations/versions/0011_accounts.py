"""The optional account (docs/accounts.md): accounts, their passkeys, their connected sources
(the re-sync material sealed in the HSM) and their consents with dates.

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sharelock.db.types import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _account_id(table: str) -> sa.Column[str]:
    return sa.Column(
        "account_id",
        sa.String(40),
        sa.ForeignKey(
            "accounts.id", name=op.f(f"fk_{table}_account_id_accounts"), ondelete="CASCADE"
        ),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=False),
        sa.Column("recovery_hash", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("recovery_hash", name=op.f("uq_accounts_recovery_hash")),
    )
    op.create_index("ix_accounts_last_used_at", "accounts", ["last_used_at"])
    op.create_table(
        "account_passkeys",
        sa.Column("id", _BIG_ID, nullable=False),
        _account_id("account_passkeys"),
        sa.Column("credential_id", sa.String(1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("label", sa.String(60), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_account_passkeys_credential_id")),
    )
    op.create_index("ix_account_passkeys_account_id", "account_passkeys", ["account_id"])
    op.create_table(
        "account_sources",
        sa.Column("id", sa.String(40), nullable=False),
        _account_id("account_sources"),
        sa.Column("data_source", sa.String(40), nullable=False),
        sa.Column("login_hash", sa.String(80), nullable=False),
        sa.Column("sealed_material", sa.LargeBinary(), nullable=True),
        sa.Column("sync_consent", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_sync_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('connected', 'failing')", name=op.f("ck_account_sources_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_sources")),
    )
    op.create_index("ix_account_sources_account_id", "account_sources", ["account_id"])
    op.create_index("ix_account_sources_login_hash", "account_sources", ["login_hash"])
    op.create_table(
        "account_consents",
        sa.Column("id", _BIG_ID, nullable=False),
        _account_id("account_consents"),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("data_source", sa.String(40), nullable=True),
        sa.Column("given_at", UTCDateTime(), nullable=False),
        sa.Column("withdrawn_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('account', 'source', 'sync')", name=op.f("ck_account_consents_purpose")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_consents")),
    )
    op.create_index("ix_account_consents_account_id", "account_consents", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_account_consents_account_id", table_name="account_consents")
    op.drop_table("account_consents")
    op.drop_index("ix_account_sources_login_hash", table_name="account_sources")
    op.drop_index("ix_account_sources_account_id", table_name="account_sources")
    op.drop_table("account_sources")
    op.drop_index("ix_account_passkeys_account_id", table_name="account_passkeys")
    op.drop_table("account_passkeys")
    op.drop_index("ix_accounts_last_used_at", table_name="accounts")
    op.drop_table("accounts")
