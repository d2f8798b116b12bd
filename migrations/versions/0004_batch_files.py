"""Files and Batches passthrough: which tenant owns each provider file and batch.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The ownership table of core/batch_files.py."""
    op.create_table(
        "batch_objects",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("object_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("batch_id", sa.String(128), nullable=True),
        sa.Column("ledgered", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("lines", sa.JSON(), nullable=True),
        sa.UniqueConstraint("provider", "object_id", name="uq_batch_objects_provider_object"),
    )
    op.create_index("ix_batch_objects_object_id", "batch_objects", ["object_id"])
    op.create_index("ix_batch_objects_tenant_id", "batch_objects", ["tenant_id"])


def downgrade() -> None:
    """Drop the ownership table."""
    op.drop_index("ix_batch_objects_tenant_id", "batch_objects")
    op.drop_index("ix_batch_objects_object_id", "batch_objects")
    op.drop_table("batch_objects")
