"""The deferred lane's tables on SQLite and PostgreSQL: claims are exclusive, outcomes stored once, purge rules."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import create_engine, create_sessionmaker
from core.deferred_models import (
    COMPLETED,
    EXPIRED,
    JOB_ENDED,
    JOB_SUBMITTED,
    QUEUED,
    SUBMITTED,
    SUBMITTING,
    DeferredJob,
    DeferredRequest,
)
from core.errors import UpstreamRejected
from core.migrate import upgrade_relational_async
from core.models import utcnow
from core.settings import Settings
from core.usage import Usage
from gateway.deferred import jobs
from gateway.deferred.outcome import completed, expired, failed
from gateway.deferred.store import (
    insert_request,
    load_for_tenant,
    mark_fetched,
    mark_ledgered,
    purge,
    store_outcomes,
    unledgered,
)

GROUP = jobs.Group("fake", "gpt-4o-mini", "chat/completions")
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sqlite_sessions(settings: Settings) -> AsyncIterator[Sessions]:
    """Sessions on a migrated SQLite file."""
    await upgrade_relational_async(settings)
    engine = create_engine(settings)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(params=["sqlite_sessions", "sessions"], ids=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Sessions:
    """Migrated sessions on SQLite, or on a PostgreSQL database of this test's own."""
    sessions: Sessions = request.getfixturevalue(request.param)
    return sessions


def queued(tenant: str = "t_acme", group: jobs.Group = GROUP, age: float = 0.0) -> DeferredRequest:
    return DeferredRequest(
        id=f"def_{secrets.token_hex(12)}", request_id=f"req_{secrets.token_hex(4)}", tenant_id=tenant,
        tenant_name=tenant.removeprefix("t_"), key_id="k_1", endpoint=group.endpoint, requested_model="gpt-4o-mini",
        provider=group.provider, upstream_model=group.upstream_model, body='{"model":"gpt-4o-mini","messages":[]}',
        tags=["nightly"], status=QUEUED, received_us=1_700_000_000_000_000,
        created_at=utcnow() - timedelta(seconds=age),
    )


async def add(store: Sessions, *requests: DeferredRequest) -> list[str]:
    for request in requests:
        await insert_request(store, request)
    return [r.id for r in requests]


async def statuses(store: Sessions) -> dict[str, tuple[str, str | None]]:
    async with store() as session:
        rows = (await session.execute(select(DeferredRequest.id, DeferredRequest.status, DeferredRequest.job_id))).all()
    return {rid: (status, job) for rid, status, job in rows}


async def test_groups_are_due_by_count_or_by_the_oldest_requests_age(store: Sessions) -> None:
    other = jobs.Group("fakeant", "claude-sonnet-4-5", "chat/completions")
    await add(store, queued(age=1), queued(age=1), queued(group=other, age=120))
    now = utcnow()
    assert await jobs.due_groups(store, now, window=60, max_requests=10) == [other]
    assert set(await jobs.due_groups(store, now, window=60, max_requests=2)) == {GROUP, other}
    assert set(await jobs.due_groups(store, now, window=0.5, max_requests=10)) == {GROUP, other}


async def test_concurrent_claims_split_the_queue_without_overlap(store: Sessions) -> None:
    ids = await add(store, *(queued() for _ in range(12)))
    claimed: list[list[str]] = []
    for _ in range(12):  # rounds of four processes claiming at once, until the queue is empty
        claims = await asyncio.gather(*(
            jobs.claim_group(store, GROUP, f"owner{n}", 5, utcnow(), 60) for n in range(4)
        ))
        claimed += [[r.id for r in got[1]] for got in claims if got is not None]
        if sum(len(batch) for batch in claimed) == len(ids):
            break
    flat = [rid for batch in claimed for rid in batch]
    assert sorted(flat) == sorted(ids)  # every request claimed, none twice
    assert all(0 < len(batch) <= 5 for batch in claimed)
    by_job = await statuses(store)
    assert {status for status, _ in by_job.values()} == {SUBMITTING}
    async with store() as session:
        made = (await session.execute(select(DeferredJob))).scalars().all()
    # One job per successful claim, with its requests; a claim that won nothing left no job behind.
    assert sorted(j.request_count for j in made) == sorted(len(b) for b in claimed)
    assert {j.id: j.request_count for j in made} == {
        job: sum(1 for _, owner in by_job.values() if owner == job) for job in {o for _, o in by_job.values()}
    }


async def test_a_job_lease_is_held_by_one_process_until_released_or_run_out(store: Sessions) -> None:
    await add(store, queued())
    claimed = await jobs.claim_group(store, GROUP, "a", 10, utcnow(), 60)
    assert claimed is not None
    job, _ = claimed
    await jobs.mark_submitted(store, job.id, "batch_1", utcnow())
    now = utcnow()
    wins = await asyncio.gather(*(jobs.claim_job(store, job.id, JOB_SUBMITTED, o, now, 60) for o in "abc"))
    assert sorted(wins) == [False, False, True]
    assert not await jobs.claim_job(store, job.id, JOB_SUBMITTED, "d", utcnow(), 60)
    # A lease that has run out can be taken over (its holder died).
    assert await jobs.claim_job(store, job.id, JOB_SUBMITTED, "d", utcnow() + timedelta(seconds=61), 60)


async def test_an_interrupted_create_is_requeued_or_adopted(store: Sessions) -> None:
    await add(store, queued(), queued())
    first = await jobs.claim_group(store, GROUP, "dead", 1, utcnow(), 60)
    second = await jobs.claim_group(store, GROUP, "dead", 1, utcnow(), 60)
    assert first is not None and second is not None
    assert await jobs.jobs_to_reconcile(store, utcnow()) == []  # leases still running
    later = utcnow() + timedelta(seconds=61)
    assert {j.id for j in await jobs.jobs_to_reconcile(store, later)} == {first[0].id, second[0].id}
    assert await jobs.requeue(store, first[0].id) == 1
    await jobs.mark_submitted(store, second[0].id, "batch_9", utcnow())
    now = await statuses(store)
    assert now[first[1][0].id] == (QUEUED, None)
    assert now[second[1][0].id] == (SUBMITTED, second[0].id)
    assert await jobs.known_batch_ids(store, "fake") == {"batch_9"}
    async with store() as session:
        assert (await session.get(DeferredJob, first[0].id)) is None


async def submitted_job(store: Sessions, count: int) -> tuple[DeferredJob, list[DeferredRequest]]:
    await add(store, *(queued() for _ in range(count)))
    claimed = await jobs.claim_group(store, GROUP, "a", count, utcnow(), 60)
    assert claimed is not None
    await jobs.mark_submitted(store, claimed[0].id, "batch_1", utcnow())
    return claimed


async def test_outcomes_are_stored_once_and_missing_lines_take_the_leftover(store: Sessions) -> None:
    job, (ok, bad, missing) = await submitted_job(store, 3)
    body = {"id": "chatcmpl-1", "object": "chat.completion", "choices": []}
    rejected = UpstreamRejected(400, "bad request", etype="invalid_request_error", code="bad", param=None)
    outcomes = {ok.id: completed(body, Usage(10, 5)), bad.id: failed(rejected)}
    assert await store_outcomes(store, job.id, outcomes, expired(), utcnow()) == 3
    assert await store_outcomes(store, job.id, {ok.id: completed({}, None)}, expired(), utcnow()) == 0
    got = {r.id: r for r in await jobs.job_requests(store, job.id)}
    assert got[ok.id].status == COMPLETED and got[ok.id].result is not None and '"chatcmpl-1"' in got[ok.id].result
    assert (got[ok.id].prompt_tokens, got[ok.id].completion_tokens, got[ok.id].usage_reported) == (10, 5, True)
    assert (got[bad.id].error_status, got[bad.id].error_code) == (400, "bad")
    assert (got[missing.id].status, got[missing.id].error_code) == (EXPIRED, "batch_expired")
    assert await jobs.claim_job(store, job.id, JOB_SUBMITTED, "a", utcnow(), 60)
    await jobs.end_job(store, job.id, "a", utcnow(), "completed")
    async with store() as session:
        assert (await session.get(DeferredJob, job.id)).status == JOB_ENDED  # type: ignore[union-attr]


async def test_results_belong_to_their_tenant_only(store: Sessions) -> None:
    mine, theirs = queued("t_acme"), queued("t_globex")
    await add(store, mine, theirs)
    assert (await load_for_tenant(store, mine.id, "t_acme")) is not None
    assert await load_for_tenant(store, theirs.id, "t_acme") is None


async def test_purge_keeps_unrecorded_and_recent_results(store: Sessions) -> None:
    job, (fetched, unfetched, unrecorded) = await submitted_job(store, 3)
    every = {r.id: completed({"ok": True}, Usage(1, 1)) for r in (fetched, unfetched, unrecorded)}
    await store_outcomes(store, job.id, every, expired(), utcnow())
    assert await jobs.claim_job(store, job.id, JOB_SUBMITTED, "a", utcnow(), 60)
    await jobs.end_job(store, job.id, "a", utcnow(), "completed")
    await mark_ledgered(store, [fetched.id, unfetched.id], utcnow())
    assert [r.id for r in await unledgered(store)] == [unrecorded.id]
    await mark_fetched(store, fetched.id, utcnow())
    hour, week = timedelta(hours=1), timedelta(days=7)
    assert await purge(store, utcnow(), hour, week) == 0  # fetched just now: still in its grace period
    assert await purge(store, utcnow() + timedelta(hours=2), hour, week) == 1
    assert set(await statuses(store)) == {unfetched.id, unrecorded.id}
    # After seven days a recorded result goes even unfetched; one whose row is not written yet stays.
    assert await purge(store, utcnow() + timedelta(days=8), hour, week) == 1
    assert set(await statuses(store)) == {unrecorded.id}
    async with store() as session:
        assert (await session.get(DeferredJob, job.id)) is not None  # still has a request
