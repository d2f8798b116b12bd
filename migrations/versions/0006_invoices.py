"""Invoices: numbers, status, stored content and hash; the per-year counter; the enterprise fee rate.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """The invoices and invoice_counters tables, and tenants.fee_rate."""
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("fee_rate", sa.String(16), nullable=True))
    op.create_table(
        "invoices",
        sa.Column("number", sa.String(20), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("open_key", sa.String(48), nullable=True, unique=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("paid_at", sa.DateTime(), nullable=True),
        sa.Column("voided_at", sa.DateTime(), nullable=True),
        sa.Column("replaced_by", sa.String(20), nullable=True),
    )
    op.create_index("ix_invoices_tenant_id", "invoices", ["tenant_id"])
    op.create_table(
        "invoice_counters",
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("invoice_counters")
    op.drop_index("ix_invoices_tenant_id", "invoices")
    op.drop_table("invoices")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("fee_rate")
