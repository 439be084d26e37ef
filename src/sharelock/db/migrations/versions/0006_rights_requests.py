"""The person's rights in one place: each partner's data-protection contact, and the requests
only a partner can act on, tracked with a reference and a one-month deadline.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sharelock.db.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        batch.add_column(sa.Column("dpo_contact", sa.String(400), nullable=True))
    op.create_table(
        "rights_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reference", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_key", sa.String(80), nullable=False),
        sa.Column("data_source", sa.String(40), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("recipient", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deadline", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('rectification', 'erasure', 'objection', 'restriction', 'withdrawal',"
            " 'portability')",
            name=op.f("ck_rights_requests_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'done', 'refused')", name=op.f("ck_rights_requests_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rights_requests")),
        sa.UniqueConstraint("reference", name=op.f("uq_rights_requests_reference")),
    )
    op.create_index(
        "ix_rights_requests_client_id_status", "rights_requests", ["client_id", "status"]
    )
    op.create_index("ix_rights_requests_subject_key", "rights_requests", ["subject_key"])
    op.create_index("ix_rights_requests_deadline", "rights_requests", ["deadline"])


def downgrade() -> None:
    op.drop_index("ix_rights_requests_deadline", table_name="rights_requests")
    op.drop_index("ix_rights_requests_subject_key", table_name="rights_requests")
    op.drop_index("ix_rights_requests_client_id_status", table_name="rights_requests")
    op.drop_table("rights_requests")
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("dpo_contact")
