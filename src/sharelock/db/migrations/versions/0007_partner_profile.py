"""Partner profiles: `fapi2` (private_key_jwt, DPoP-bound tokens) or `basic`
(client_secret_basic, bearer tokens). Partners registered before keep what they did: `basic`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.add_column(
            sa.Column("profile", sa.String(16), server_default="basic", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("profile")
