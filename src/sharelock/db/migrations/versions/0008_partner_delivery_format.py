"""How `/v1/share` answers a partner: `json` (as before), `jws` (signed in the HSM) or `jwe`
(that JWS encrypted to the partner's `use: enc` key). Existing partners keep `json`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.add_column(
            sa.Column("delivery_format", sa.String(8), server_default="json", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("delivery_format")
