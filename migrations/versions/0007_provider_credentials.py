"""Provider credential overrides (sealed keys, base URLs), the SSRF allowlist and their change counter.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The provider_credentials, credential_allowlist and credential_revision tables."""
    op.create_table(
        "provider_credentials",
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("api_key_sealed", sa.Text(), nullable=True),
        sa.Column("api_key_last4", sa.String(4), nullable=True),
        sa.Column("base_url", sa.String(2048), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(320), nullable=False),
    )
    op.create_table(
        "credential_allowlist",
        sa.Column("host", sa.String(253), primary_key=True),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("added_by", sa.String(320), nullable=False),
    )
    revision_table = op.create_table(
        "credential_revision",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
    )
    # The one row every change bumps; it exists from the start so a poll never finds nothing.
    op.bulk_insert(revision_table, [{"id": 1, "version": 0}])


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("credential_revision")
    op.drop_table("credential_allowlist")
    op.drop_table("provider_credentials")
