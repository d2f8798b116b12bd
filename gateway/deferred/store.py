"""Deferred requests in the relational store: accepted, fetched, given their outcome, recorded, purged."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import orjson
from sqlalchemy import delete, exists, or_, select, update

from core.deferred_models import (
    COMPLETED,
    JOB_ENDED,
    SUBMITTED,
    SUBMITTING,
    TERMINAL,
    DeferredJob,
    DeferredRequest,
)
from core.usage import Usage, estimate_tokens
from gateway.deferred.jobs import Sessions
from gateway.deferred.outcome import Outcome, error_fields
from gateway.providers.openai_stream import reply_chars


async def insert_request(sessions: Sessions, request: DeferredRequest) -> None:
    """Store an accepted request (queued)."""
    async with sessions() as session:
        session.add(request)
        await session.commit()


async def load_for_tenant(sessions: Sessions, deferred_id: str, tenant_id: str) -> DeferredRequest | None:
    """The request with this id if it belongs to the tenant (another tenant's id reads as unknown)."""
    async with sessions() as session:
        query = select(DeferredRequest).where(DeferredRequest.id == deferred_id, DeferredRequest.tenant_id == tenant_id)
        return (await session.execute(query)).scalar_one_or_none()


async def mark_fetched(sessions: Sessions, deferred_id: str, now: datetime) -> None:
    """Note the first fetch of a finished result (the purge keeps it a grace period longer)."""
    r = DeferredRequest
    async with sessions() as session:
        await session.execute(update(r).where(r.id == deferred_id, r.fetched_at.is_(None)).values(fetched_at=now))
        await session.commit()


def _usage(request: DeferredRequest, outcome: Outcome) -> Usage:
    """Tokens to record: as reported, else estimated from the prompt and the answer (as the synchronous path does)."""
    if outcome.usage is not None:
        return outcome.usage
    if outcome.body is None:
        return Usage(reported=False)
    return Usage(
        prompt_tokens=estimate_tokens(request.prompt_chars),
        completion_tokens=estimate_tokens(reply_chars(outcome.body)), reported=False,
    )


def outcome_values(request: DeferredRequest, outcome: Outcome, now: datetime) -> dict[str, object]:
    """The columns an outcome sets on its request."""
    usage = _usage(request, outcome)
    values: dict[str, object] = {
        "status": outcome.status, "completed_at": now, "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens, "cached_tokens": usage.cached_tokens,
        "cache_write_tokens": usage.cache_write_tokens, "usage_reported": usage.reported,
    }
    if outcome.status == COMPLETED and outcome.body is not None:
        values["result"] = orjson.dumps(outcome.body).decode()
    if outcome.error is not None:
        values["error"], values["error_status"], values["error_code"] = error_fields(outcome.error)
    return values


async def store_outcomes(
    sessions: Sessions, job_id: str, outcomes: Mapping[str, Outcome], leftover: Outcome, now: datetime
) -> int:
    """Give every request of the job its outcome (`leftover` for those without a result line), in one transaction.

    Only requests still submitted change: a result stored before (by a poller that died before ending the job)
    is not stored twice.
    """
    r = DeferredRequest
    changed = 0
    async with sessions() as session:
        waiting = (await session.execute(
            select(r).where(r.job_id == job_id, r.status.in_((SUBMITTED, SUBMITTING)))
        )).scalars().all()
        for request in waiting:
            outcome = outcomes.get(request.id, leftover)
            result = await session.execute(
                update(r).where(r.id == request.id, r.status == request.status)
                .values(**outcome_values(request, outcome, now))
            )
            changed += int(getattr(result, "rowcount", 0) or 0)
        await session.commit()
    return changed


async def unledgered(
    sessions: Sessions, job_id: str | None = None, before: datetime | None = None
) -> list[DeferredRequest]:
    """Finished requests whose ledger row is not recorded yet (of one job, or finished before a time)."""
    r = DeferredRequest
    query = select(r).where(r.status.in_(TERMINAL), r.ledgered_at.is_(None))
    if job_id is not None:
        query = query.where(r.job_id == job_id)
    if before is not None:
        query = query.where(r.completed_at < before)
    async with sessions() as session:
        return list((await session.execute(query.order_by(r.id))).scalars())


async def mark_ledgered(sessions: Sessions, ids: list[str], now: datetime) -> None:
    """Note that these requests' ledger rows are written."""
    r = DeferredRequest
    async with sessions() as session:
        await session.execute(update(r).where(r.id.in_(ids), r.ledgered_at.is_(None)).values(ledgered_at=now))
        await session.commit()


async def purge(sessions: Sessions, now: datetime, grace: timedelta, keep: timedelta) -> int:
    """Forget recorded results fetched more than `grace` ago or finished more than `keep` ago; then empty jobs."""
    r, j = DeferredRequest, DeferredJob
    async with sessions() as session:
        result = await session.execute(
            delete(r).where(
                r.status.in_(TERMINAL), r.ledgered_at.is_not(None),
                or_(r.fetched_at < now - grace, r.completed_at < now - keep),
            )
        )
        await session.execute(delete(j).where(j.status == JOB_ENDED, ~exists().where(r.job_id == j.id)))
        await session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
