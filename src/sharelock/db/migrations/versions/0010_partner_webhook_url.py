"""A partner may register a webhook: the HTTPS URL where the broker pushes Security Event Tokens
(RFC 8417, RFC 8935) about its shares and the rights people ask of it. Existing partners have
none, and nothing is sent to them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.add_column(sa.Column("webhook_url", sa.String(2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("webhook_url")
