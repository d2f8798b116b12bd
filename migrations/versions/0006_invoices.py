"""Invoices: numbers, status, stored content and hash.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet: the tables arrive with the feature."""


def downgrade() -> None:
    """Nothing yet."""
