"""Deferred lane: queued requests, provider batch jobs and their results.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _request_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("tenant_name", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("requested_model", sa.String(256), nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("upstream_model", sa.String(256), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("policy_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("policy_version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False, server_default=""),
        sa.Column("prompt_chars", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_status", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error_code", sa.String(64), nullable=False, server_default=""),
        *(sa.Column(name, sa.Integer(), nullable=False, server_default="0") for name in (
            "prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens")),
        sa.Column("usage_reported", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        *(sa.Column(name, sa.DateTime(), nullable=True) for name in ("completed_at", "ledgered_at", "fetched_at")),
    ]


def _job_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("upstream_model", sa.String(256), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider_batch_id", sa.String(200), nullable=True),
        sa.Column("input_file_id", sa.String(200), nullable=True),
        sa.Column("provider_status", sa.String(32), nullable=False, server_default=""),
        *(sa.Column(name, sa.Integer(), nullable=False, server_default="0") for name in (
            "request_count", "completed_count", "failed_count")),
        sa.Column("owner", sa.String(32), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        *(sa.Column(name, sa.DateTime(), nullable=True) for name in ("submitted_at", "polled_at", "ended_at")),
    ]


def upgrade() -> None:
    op.create_table("deferred_requests", *_request_columns())
    op.create_index("ix_deferred_requests_tenant_id", "deferred_requests", ["tenant_id"])
    op.create_index("ix_deferred_requests_job_id", "deferred_requests", ["job_id"])
    op.create_index(
        "ix_deferred_requests_due", "deferred_requests", ["status", "provider", "upstream_model", "endpoint"]
    )
    op.create_table("deferred_jobs", *_job_columns())
    op.create_index("ix_deferred_jobs_status", "deferred_jobs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_deferred_jobs_status", "deferred_jobs")
    op.drop_table("deferred_jobs")
    op.drop_index("ix_deferred_requests_due", "deferred_requests")
    op.drop_index("ix_deferred_requests_job_id", "deferred_requests")
    op.drop_index("ix_deferred_requests_tenant_id", "deferred_requests")
    op.drop_table("deferred_requests")
