"""Policies: every version as a row, status changes as events, and a change counter gateways poll.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("policy_id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_policy_versions_status", "policy_versions", ["status"])
    op.create_table(
        "policy_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("policy_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_policy_events_policy_id", "policy_events", ["policy_id"])
    revision_table = op.create_table(
        "policy_revision",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
    )
    # The one row every change bumps; it exists from the start so a poll never finds nothing.
    op.bulk_insert(revision_table, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("policy_revision")
    op.drop_index("ix_policy_events_policy_id", "policy_events")
    op.drop_table("policy_events")
    op.drop_index("ix_policy_versions_status", "policy_versions")
    op.drop_table("policy_versions")
