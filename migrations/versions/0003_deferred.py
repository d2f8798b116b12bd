"""Deferred lane: queued requests, provider batch jobs and their results.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet: the tables arrive with the feature."""


def downgrade() -> None:
    """Nothing yet."""
