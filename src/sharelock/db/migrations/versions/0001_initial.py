"""Partners, the audit trail and its chain head.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sharelock.db.types import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

GENESIS_HASH = "0" * 64
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("client_secret_hash", sa.String(255), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("logo_url", sa.String(2000), nullable=True),
        sa.Column("home_url", sa.String(2000), nullable=True),
        sa.Column("jwks", sa.JSON(), nullable=True),
        sa.Column("jwks_uri", sa.String(2000), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
        sa.UniqueConstraint("client_id", name=op.f("uq_partners_client_id")),
        sa.CheckConstraint(
            "role IN ('controller', 'processor', 'joint')", name=op.f("ck_partners_role")
        ),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        sa.Column("data_source", sa.String(40), nullable=True),
        sa.Column("login_hash", sa.String(80), nullable=True),
        sa.Column("flow_ref", sa.String(128), nullable=True),
        sa.Column("browser_family", sa.String(16), nullable=True),
        sa.Column("device_type", sa.String(16), nullable=True),
        sa.Column("outcome", sa.String(40), nullable=True),
        sa.Column("detail_code", sa.String(40), nullable=True),
        sa.Column("delivery_key", sa.String(128), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("delivery_key", name=op.f("uq_audit_events_delivery_key")),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_login_hash_at", "audit_events", ["login_hash", "at"])
    op.create_index("ix_audit_events_client_id_at", "audit_events", ["client_id", "at"])
    op.create_index("ix_audit_events_data_source_at", "audit_events", ["data_source", "at"])
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("anchor_id", sa.BigInteger(), nullable=False),
        sa.Column("anchor_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
    )
    op.bulk_insert(
        head,
        [
            {
                "id": 1,
                "last_id": 0,
                "last_hash": GENESIS_HASH,
                "anchor_id": 0,
                "anchor_hash": GENESIS_HASH,
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("audit_chain_head")
    op.drop_index("ix_audit_events_data_source_at", table_name="audit_events")
    op.drop_index("ix_audit_events_client_id_at", table_name="audit_events")
    op.drop_index("ix_audit_events_login_hash_at", table_name="audit_events")
    op.drop_index("ix_audit_events_at", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("partners")
