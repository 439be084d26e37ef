"""Credentials kept for corrective maintenance, with the person's consent (120 days at most).

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sharelock.db.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance_credentials",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("data_source", sa.String(40), nullable=False),
        sa.Column("login_hash", sa.String(80), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("flow_ref", sa.String(128), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_credentials")),
    )
    op.create_index(
        "ix_maintenance_credentials_expires_at", "maintenance_credentials", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_maintenance_credentials_expires_at", table_name="maintenance_credentials")
    op.drop_table("maintenance_credentials")
