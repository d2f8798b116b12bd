"""The worker's steps: submit due groups as jobs, reconcile interrupted creates, poll jobs, record results.

Submitting is crash-safe by ordering: the job (status creating) and its claimed requests are committed before the
provider is asked; the OpenAI input file id is committed before the batch is created; the batch id after. A
process that dies (or a create that fails) anywhere in between leaves a creating job whose lease runs out; the
next process to see it asks the provider whether the batch exists (`find`) and either adopts it or puts the
requests back in the queue. So a request is never lost and never in two batches.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.deferred_models import JOB_CREATING, JOB_SUBMITTED, DeferredJob, DeferredRequest
from core.errors import NetraError, UpstreamRejected
from core.models import utcnow
from gateway.deferred import jobs
from gateway.deferred.outcome import BatchState, failed
from gateway.deferred.rows import deferred_row
from gateway.deferred.store import mark_ledgered, store_outcomes, unledgered

if TYPE_CHECKING:
    from gateway.deferred.lane import LaneContext

log = logging.getLogger("netra.gateway.deferred")
# Results finished this long ago without a ledger row were left by a process that died: record them.
LEFTOVER_AFTER_S = 60.0


async def submit_due(ctx: LaneContext) -> None:
    """Submit every group that is due, as many jobs as it takes (at most defer_max_requests each)."""
    s = ctx.settings
    for group in await jobs.due_groups(ctx.sessions, utcnow(), s.defer_window, s.defer_max_requests):
        while True:
            claimed = await jobs.claim_group(
                ctx.sessions, group, ctx.owner, s.defer_max_requests, utcnow(), ctx.create_lease
            )
            if claimed is None:
                break
            await submit(ctx, *claimed)
            if len(claimed[1]) < s.defer_max_requests:
                break


async def submit(ctx: LaneContext, job: DeferredJob, requests: list[DeferredRequest]) -> None:
    """Create the provider batch of a claimed job and record it."""
    client = ctx.clients.get(job.provider)
    if client is None:
        await _refuse(ctx, job, NetraError(f"The provider {job.provider} is no longer configured for batches."))
        return

    async def on_file(file_id: str) -> None:
        await jobs.record_input_file(ctx.sessions, job.id, file_id)

    try:
        batch_id = await client.create(job, requests, on_file)
    except UpstreamRejected as exc:
        # The provider refused the batch itself: no batch exists, and sending it again would be refused again.
        await _refuse(ctx, job, exc)
        return
    except Exception:
        # It may or may not exist (a timeout after the provider created it): reconciliation asks the provider.
        log.warning("deferred batch not created; reconciling", extra={"job": job.id}, exc_info=True)
        await jobs.expire_lease(ctx.sessions, job.id, ctx.owner, utcnow())
        return
    await jobs.mark_submitted(ctx.sessions, job.id, batch_id, utcnow())
    log.info("deferred batch submitted", extra={"job": job.id, "batch": batch_id, "requests": len(requests)})


async def _refuse(ctx: LaneContext, job: DeferredJob, error: NetraError) -> None:
    """Every request of a job that cannot be submitted gets the error as its result."""
    await store_outcomes(ctx.sessions, job.id, {}, failed(error), utcnow())
    await jobs.end_job(ctx.sessions, job.id, ctx.owner, utcnow(), "refused")
    await record(ctx, job.id)


async def reconcile(ctx: LaneContext) -> None:
    """Jobs left in creating: adopt the provider's batch if it was created, else requeue the requests."""
    for job in await jobs.jobs_to_reconcile(ctx.sessions, utcnow()):
        client = ctx.clients.get(job.provider)
        if client is None or not await jobs.claim_job(
            ctx.sessions, job.id, JOB_CREATING, ctx.owner, utcnow(), ctx.create_lease
        ):
            continue
        try:
            batch_id = await client.find(job, await jobs.known_batch_ids(ctx.sessions, job.provider))
        except NetraError:
            await jobs.expire_lease(ctx.sessions, job.id, ctx.owner, utcnow())
            raise
        if batch_id is None:
            count = await jobs.requeue(ctx.sessions, job.id)
            log.info("deferred job never reached the provider; requeued", extra={"job": job.id, "requests": count})
        else:
            await jobs.mark_submitted(ctx.sessions, job.id, batch_id, utcnow())
            log.info("deferred batch adopted after an interrupted create", extra={"job": job.id, "batch": batch_id})


async def poll_due(ctx: LaneContext) -> None:
    """Poll every submitted job due for it that no other process is polling."""
    interval = ctx.settings.defer_poll_interval
    for job in await jobs.jobs_to_poll(ctx.sessions, utcnow(), interval):
        client = ctx.clients.get(job.provider)
        if client is None or job.provider_batch_id is None:
            continue
        if not await jobs.claim_job(ctx.sessions, job.id, JOB_SUBMITTED, ctx.owner, utcnow(), ctx.poll_lease):
            continue
        try:
            state = await client.status(job.provider_batch_id)
            if state.ended:
                await finish(ctx, job, state)
                continue
        except BaseException:
            await jobs.release(ctx.sessions, job.id, ctx.owner)
            raise
        await jobs.release(
            ctx.sessions, job.id, ctx.owner, provider_status=state.provider_status,
            completed_count=state.completed, failed_count=state.failed,
        )


async def finish(ctx: LaneContext, job: DeferredJob, state: BatchState) -> None:
    """Store an ended batch's results, end the job, then write the ledger rows."""
    client = ctx.clients[job.provider]
    requests = await jobs.job_requests(ctx.sessions, job.id)
    outcomes = await client.results(state, {r.id: r.requested_model for r in requests})
    leftover = state.leftover or failed(NetraError("The provider returned no result for this request."))
    stored = await store_outcomes(ctx.sessions, job.id, outcomes, leftover, utcnow())
    await jobs.end_job(ctx.sessions, job.id, ctx.owner, utcnow(), state.provider_status)
    log.info("deferred batch ended", extra={"job": job.id, "status": state.provider_status, "requests": stored})
    await record(ctx, job.id)


async def record(ctx: LaneContext, job_id: str | None = None, before: datetime | None = None) -> int:
    """Write the ledger rows of finished requests not yet recorded, then note them as recorded.

    A process that dies between the two leaves rows noted as unwritten; they are written again (the same row,
    built from the stored request, which the ledger keeps once).
    """
    requests = await unledgered(ctx.sessions, job_id, before)
    for request in requests:
        ctx.ledger.finish(deferred_row(request, ctx.prices))
    if requests:
        await mark_ledgered(ctx.sessions, [r.id for r in requests], utcnow())
    return len(requests)


async def record_leftovers(ctx: LaneContext) -> None:
    """Rows a process that died left unwritten (after storing results, before noting the rows as written)."""
    await record(ctx, before=utcnow() - timedelta(seconds=LEFTOVER_AFTER_S))
