"""A process that dies mid-submit: the next adopts the batch it created, or requeues what never reached the provider.

The lane's steps run against the fake provider and a migrated SQLite database; a "dead" process is one that got
part-way through a submit (claimed, uploaded, created) and never recorded the rest.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import aiohttp
import pytest
from sqlalchemy import select

from core.config import ProviderConfig
from core.db import create_engine, create_sessionmaker
from core.deferred_models import COMPLETED, JOB_SUBMITTED, QUEUED, DeferredJob, DeferredRequest
from core.migrate import upgrade_relational_async
from core.models import utcnow
from core.prices import load_seed
from core.settings import Settings
from gateway.deferred import jobs, work
from gateway.deferred.clients import build_clients
from gateway.deferred.lane import LaneContext
from gateway.deferred.store import insert_request
from gateway.ledger import NullLedgerWriter
from gateway.providers.http import Timeouts, create_session
from tests.fake_upstream import FakeUpstream

OPENAI = jobs.Group("fake", "gpt-4o-mini", "chat/completions")
ANTHROPIC = jobs.Group("fakeant", "claude-sonnet-4-5", "chat/completions")
BODY = '{"model":"m","messages":[{"role":"user","content":"Hello there!"}]}'


@dataclass
class Lane:
    """Two processes' views of one database and one provider: the dead one's and the survivor's."""

    dead: LaneContext
    alive: LaneContext

    @property
    def sessions(self) -> jobs.Sessions:
        return self.alive.sessions


@pytest.fixture
async def lane(settings: Settings, fake_upstream: FakeUpstream) -> AsyncIterator[Lane]:
    configured = settings.model_copy(update={"defer_window": 0.01, "defer_poll_interval": 0.01})
    await upgrade_relational_async(configured)
    engine = create_engine(configured)
    http = create_session(configured)
    providers = {
        "fake": ProviderConfig(name="fake", kind="openai", base_url=f"{fake_upstream.url}/v1",
                               api_key=fake_upstream.api_key),  # type: ignore[arg-type]
        "fakeant": ProviderConfig(name="fakeant", kind="anthropic", base_url=fake_upstream.url,
                                  api_key=fake_upstream.anthropic_key),  # type: ignore[arg-type]
    }
    clients = build_clients(providers, http, Timeouts.from_settings(configured))
    sessions = create_sessionmaker(engine)

    def context(owner: str) -> LaneContext:
        return LaneContext(configured, sessions, clients, NullLedgerWriter(), load_seed(), owner)

    yield Lane(context("dead"), context("alive"))
    await http.close()
    await engine.dispose()


async def queue(lane: Lane, group: jobs.Group, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        request = DeferredRequest(
            id=f"def_{secrets.token_hex(12)}", request_id=f"req_{secrets.token_hex(4)}", tenant_id="t_1",
            tenant_name="acme", key_id="k_1", endpoint=group.endpoint, requested_model="gpt-4o-mini",
            provider=group.provider, upstream_model=group.upstream_model, body=BODY, tags=[], status=QUEUED,
            received_us=1_764_000_000_000_000, created_at=utcnow(),
        )
        await insert_request(lane.sessions, request)
        ids.append(request.id)
    return ids


async def die_after(lane: Lane, group: jobs.Group, *, create: bool) -> DeferredJob:
    """The dead process: claims a job (its lease already run out) and creates the batch, or only uploads its file."""
    claimed = await jobs.claim_group(lane.sessions, group, "dead", 100, utcnow(), lease=0)
    assert claimed is not None
    job, requests = claimed
    client = lane.dead.clients[group.provider]

    async def on_file(file_id: str) -> None:
        await jobs.record_input_file(lane.sessions, job.id, file_id)
        if not create:
            raise aiohttp.ServerDisconnectedError()  # the process dies between the upload and the create

    if create:
        await client.create(job, requests, on_file)
    else:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.create(job, requests, on_file)
    return job


async def states(lane: Lane) -> dict[str, tuple[str, str | None]]:
    async with lane.sessions() as session:
        rows = (await session.execute(select(DeferredRequest.id, DeferredRequest.status, DeferredRequest.job_id))).all()
    return {rid: (status, job) for rid, status, job in rows}


async def run_until_done(lane: Lane) -> None:
    for _ in range(3):
        await asyncio.sleep(0.05)  # past the window and the poll interval
        await work.reconcile(lane.alive)
        await work.submit_due(lane.alive)
        await work.poll_due(lane.alive)


@pytest.mark.parametrize("group", [OPENAI, ANTHROPIC], ids=["openai", "anthropic"])
async def test_a_batch_created_by_a_dead_process_is_adopted_not_sent_again(
    lane: Lane, fake_upstream: FakeUpstream, group: jobs.Group
) -> None:
    ids = await queue(lane, group, 3)
    job = await die_after(lane, group, create=True)
    assert len(fake_upstream.batches) == 1
    await work.reconcile(lane.alive)
    async with lane.sessions() as session:
        adopted = await session.get(DeferredJob, job.id)
    assert adopted is not None and adopted.status == JOB_SUBMITTED
    assert adopted.provider_batch_id == next(iter(fake_upstream.batches))
    await run_until_done(lane)
    assert len(fake_upstream.batches) == 1  # never submitted twice
    assert {rid: status for rid, (status, _) in (await states(lane)).items()} == dict.fromkeys(ids, COMPLETED)


async def test_a_job_that_never_reached_the_provider_is_requeued_and_sent_once(
    lane: Lane, fake_upstream: FakeUpstream
) -> None:
    ids = await queue(lane, OPENAI, 2)
    job = await die_after(lane, OPENAI, create=False)
    assert fake_upstream.batches == {} and len(fake_upstream.files) == 1  # uploaded, never created
    await work.reconcile(lane.alive)
    assert await states(lane) == dict.fromkeys(ids, (QUEUED, None))
    async with lane.sessions() as session:
        assert await session.get(DeferredJob, job.id) is None
    await run_until_done(lane)
    assert len(fake_upstream.batches) == 1
    assert {status for status, _ in (await states(lane)).values()} == {COMPLETED}


async def test_a_live_create_is_not_reconciled_under_its_owner(lane: Lane, fake_upstream: FakeUpstream) -> None:
    await queue(lane, OPENAI, 1)
    claimed = await jobs.claim_group(lane.sessions, OPENAI, "busy", 100, utcnow(), lease=600)
    assert claimed is not None
    await work.reconcile(lane.alive)
    await work.submit_due(lane.alive)
    async with lane.sessions() as session:
        job = await session.get(DeferredJob, claimed[0].id)
    assert job is not None and job.owner == "busy" and fake_upstream.batches == {}


async def test_two_processes_sharing_the_database_submit_and_poll_each_request_once(
    lane: Lane, fake_upstream: FakeUpstream
) -> None:
    small = lane.alive.settings.model_copy(update={"defer_max_requests": 4})
    first, second = (replace(ctx, settings=small) for ctx in (lane.dead, lane.alive))
    ids = await queue(lane, OPENAI, 10)
    for _ in range(4):
        await asyncio.sleep(0.05)
        await asyncio.gather(work.submit_due(first), work.submit_due(second))
        await asyncio.gather(work.poll_due(first), work.poll_due(second))
    submitted = [
        json.loads(line)["custom_id"] for stored in fake_upstream.files.values() if stored.purpose == "batch"
        for line in stored.content.splitlines() if line.strip()
    ]
    assert sorted(submitted) == sorted(ids)  # every request in exactly one batch
    assert all(len(b) <= 4 for b in _inputs(fake_upstream)) and len(fake_upstream.batches) == 3
    assert {status for status, _ in (await states(lane)).values()} == {COMPLETED}


def _inputs(fake: FakeUpstream) -> list[list[bytes]]:
    inputs = [f for f in fake.files.values() if f.purpose == "batch"]
    return [[line for line in f.content.splitlines() if line.strip()] for f in inputs]
