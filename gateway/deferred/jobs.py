"""Claiming work in the shared database: groups of queued requests into a job, and jobs by lease.

Every claim is a conditional UPDATE (the status the claimer expects, or a lease that has run out), so of several
gateway processes exactly one wins each request and each job; the loser's UPDATE matches no row.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.deferred_models import (
    JOB_CREATING,
    JOB_ENDED,
    JOB_SUBMITTED,
    QUEUED,
    SUBMITTED,
    SUBMITTING,
    DeferredJob,
    DeferredRequest,
)

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True, slots=True)
class Group:
    """Requests that can share one provider batch job: one provider, one upstream model, one endpoint."""

    provider: str
    upstream_model: str
    endpoint: str


def new_job_id() -> str:
    """A fresh job id."""
    return f"dj_{secrets.token_hex(12)}"


def _changed(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def due_groups(sessions: Sessions, now: datetime, window: float, max_requests: int) -> list[Group]:
    """Groups with enough queued requests, or whose oldest queued request has waited the window."""
    r = DeferredRequest
    query = (
        select(r.provider, r.upstream_model, r.endpoint, func.count(), func.min(r.created_at))
        .where(r.status == QUEUED).group_by(r.provider, r.upstream_model, r.endpoint)
    )
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    oldest_allowed = now - timedelta(seconds=window)
    due = []
    for provider, model, endpoint, count, oldest in rows:
        if count >= max_requests or _aware(oldest) <= oldest_allowed:
            due.append(Group(provider, model, endpoint))
    return due


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def claim_group(
    sessions: Sessions, group: Group, owner: str, limit: int, now: datetime, lease: float
) -> tuple[DeferredJob, list[DeferredRequest]] | None:
    """Record a job (status creating, leased to `owner`) and claim up to `limit` queued requests into it."""
    job = DeferredJob(
        id=new_job_id(), provider=group.provider, upstream_model=group.upstream_model, endpoint=group.endpoint,
        status=JOB_CREATING, owner=owner, lease_until=now + timedelta(seconds=lease), created_at=now,
    )
    r = DeferredRequest
    async with sessions() as session:
        ids = await _queued_ids(session, group, limit)
        session.add(job)
        await session.flush()
        # Only rows still queued move: another process may have claimed some of them since the SELECT.
        await session.execute(
            update(r).where(r.id.in_(ids), r.status == QUEUED).values(status=SUBMITTING, job_id=job.id)
        )
        claimed = list((await session.execute(select(r).where(r.job_id == job.id).order_by(r.id))).scalars())
        if not claimed:
            await session.delete(job)
            await session.commit()
            return None
        job.request_count = len(claimed)
        await session.commit()
    return job, claimed


async def _queued_ids(session: AsyncSession, group: Group, limit: int) -> list[str]:
    r = DeferredRequest
    query = (
        select(r.id).where(r.status == QUEUED, r.provider == group.provider, r.upstream_model == group.upstream_model,
                           r.endpoint == group.endpoint)
        .order_by(r.created_at, r.id).limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def record_input_file(sessions: Sessions, job_id: str, file_id: str) -> None:
    """Note the uploaded input file before the batch is created (what reconciliation looks for)."""
    async with sessions() as session:
        await session.execute(update(DeferredJob).where(DeferredJob.id == job_id).values(input_file_id=file_id))
        await session.commit()


async def mark_submitted(sessions: Sessions, job_id: str, batch_id: str, now: datetime) -> None:
    """The provider accepted the job: the job and its requests are submitted, and the lease is released."""
    async with sessions() as session:
        await session.execute(
            update(DeferredJob).where(DeferredJob.id == job_id).values(
                status=JOB_SUBMITTED, provider_batch_id=batch_id, submitted_at=now, owner=None, lease_until=None,
            )
        )
        await session.execute(
            update(DeferredRequest).where(DeferredRequest.job_id == job_id, DeferredRequest.status == SUBMITTING)
            .values(status=SUBMITTED)
        )
        await session.commit()


async def requeue(sessions: Sessions, job_id: str) -> int:
    """The job never reached the provider: its requests go back to the queue and the job is forgotten."""
    async with sessions() as session:
        result = await session.execute(
            update(DeferredRequest).where(DeferredRequest.job_id == job_id, DeferredRequest.status == SUBMITTING)
            .values(status=QUEUED, job_id=None)
        )
        await session.execute(delete(DeferredJob).where(DeferredJob.id == job_id))
        await session.commit()
    return _changed(result)


async def release(sessions: Sessions, job_id: str, owner: str, **values: Any) -> None:
    """Give up the lease on a job (with any other column updates), if this process still holds it."""
    async with sessions() as session:
        await session.execute(
            update(DeferredJob).where(DeferredJob.id == job_id, DeferredJob.owner == owner)
            .values(owner=None, lease_until=None, **values)
        )
        await session.commit()


async def expire_lease(sessions: Sessions, job_id: str, owner: str, now: datetime) -> None:
    """End this process's lease at once (a create that failed or was interrupted): reconciliation takes over."""
    async with sessions() as session:
        await session.execute(
            update(DeferredJob).where(DeferredJob.id == job_id, DeferredJob.owner == owner).values(lease_until=now)
        )
        await session.commit()


async def claim_job(sessions: Sessions, job_id: str, status: str, owner: str, now: datetime, lease: float) -> bool:
    """Take the lease on a job in `status` whose lease is free or has run out; False if another process holds it."""
    j = DeferredJob
    async with sessions() as session:
        result = await session.execute(
            update(j).where(j.id == job_id, j.status == status, or_(j.lease_until.is_(None), j.lease_until < now))
            .values(owner=owner, lease_until=now + timedelta(seconds=lease), polled_at=now)
        )
        await session.commit()
    return _changed(result) == 1


async def jobs_to_reconcile(sessions: Sessions, now: datetime) -> list[DeferredJob]:
    """Jobs left in creating by a process that died or failed mid-create (their lease ran out)."""
    j = DeferredJob
    async with sessions() as session:
        query = select(j).where(j.status == JOB_CREATING, j.lease_until < now)
        return list((await session.execute(query)).scalars())


async def jobs_to_poll(sessions: Sessions, now: datetime, interval: float) -> list[DeferredJob]:
    """Submitted jobs not polled within the interval and not leased to a live poller."""
    j = DeferredJob
    since = now - timedelta(seconds=interval)
    async with sessions() as session:
        query = select(j).where(
            j.status == JOB_SUBMITTED, or_(j.lease_until.is_(None), j.lease_until < now),
            or_(j.polled_at.is_(None), j.polled_at <= since),
        )
        return list((await session.execute(query)).scalars())


async def job_requests(sessions: Sessions, job_id: str) -> list[DeferredRequest]:
    """The requests of a job."""
    async with sessions() as session:
        query = select(DeferredRequest).where(DeferredRequest.job_id == job_id).order_by(DeferredRequest.id)
        return list((await session.execute(query)).scalars())


async def known_batch_ids(sessions: Sessions, provider: str) -> set[str]:
    """Provider batch ids already recorded for a provider (reconciliation must not adopt another job's batch)."""
    j = DeferredJob
    async with sessions() as session:
        query = select(j.provider_batch_id).where(j.provider == provider, j.provider_batch_id.is_not(None))
        return {str(batch_id) for batch_id in (await session.execute(query)).scalars()}


async def end_job(sessions: Sessions, job_id: str, owner: str, now: datetime, provider_status: str) -> None:
    """The job's results are stored: it is over."""
    await release(sessions, job_id, owner, status=JOB_ENDED, ended_at=now, provider_status=provider_status)

