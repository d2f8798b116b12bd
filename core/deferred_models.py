"""Relational tables of the deferred lane: requests waiting for a provider batch job, and the jobs themselves.

A request goes queued → submitting (claimed into a job being created) → submitted → completed / failed / expired.
A job goes creating (recorded before the provider is asked, so a process that dies mid-create leaves a trace to
reconcile) → submitted → ended. Several gateway processes share these tables: each claims work with a conditional
UPDATE (a status it expects, or a lease that has run out), so one process submits each request and polls each job.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, UTCDateTime, utcnow

QUEUED, SUBMITTING, SUBMITTED = "queued", "submitting", "submitted"
COMPLETED, FAILED, EXPIRED = "completed", "failed", "expired"
TERMINAL = (COMPLETED, FAILED, EXPIRED)
JOB_CREATING, JOB_SUBMITTED, JOB_ENDED = "creating", "submitted", "ended"


class DeferredRequest(Base):
    """One accepted request: who sent it, what to send, and (once its job ended) its result or error."""

    __tablename__ = "deferred_requests"
    __table_args__ = (Index("ix_deferred_requests_due", "status", "provider", "upstream_model", "endpoint"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128))
    tenant_id: Mapped[str] = mapped_column(String(32), index=True)
    tenant_name: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str] = mapped_column(String(32))
    requested_model: Mapped[str] = mapped_column(String(256))
    provider: Mapped[str] = mapped_column(String(200))
    upstream_model: Mapped[str] = mapped_column(String(256))
    body: Mapped[str] = mapped_column(Text)  # the client's JSON body, as parsed and re-serialised
    policy_id: Mapped[str] = mapped_column(String(32), default="")
    policy_version: Mapped[int] = mapped_column(Integer, default=0)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    request_hash: Mapped[str] = mapped_column(String(64), default="")
    prompt_chars: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # the normal response body (JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # the OpenAI error envelope (JSON)
    error_status: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str] = mapped_column(String(64), default="")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0)
    usage_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the original request arrived, in epoch microseconds: the ledger row's received_at, exactly.
    received_us: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ledgered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DeferredJob(Base):
    """One provider batch job: the requests whose job_id names it, and where the provider is with them."""

    __tablename__ = "deferred_jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(200))
    upstream_model: Mapped[str] = mapped_column(String(256))
    endpoint: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=JOB_CREATING, index=True)
    provider_batch_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    input_file_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    provider_status: Mapped[str] = mapped_column(String(32), default="")
    request_count: Mapped[int] = mapped_column(Integer, default=0)
    completed_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
