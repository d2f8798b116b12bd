"""One gathered batch on its way upstream: the shared call, the split, and what each member gets when it fails.

A batch runs in a task of its own (a member whose client leaves never cancels the others' call). A batch of one
sends its member's body untouched. A shared call that fails for one member's input (a 4xx about the request) is
undone: every member is sent on its own, so only the offender gets the error; any other failure (5xx, timeout,
connection, garbage after retries) fails every member of the batch with that error, and no other batch.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from core.errors import NetraError
from gateway.coalesce import request_fault
from gateway.context import CallContext
from gateway.embed_inputs import GroupKey, Inputs, merged_body
from gateway.embed_metrics import BatchMetrics
from gateway.embed_split import Part, split_answer
from gateway.providers.base import UpstreamCall, UpstreamReply
from policies import BatchPolicy

# Send a call upstream through the attempt machinery the handler's own calls go through (retries, deployments),
# counting on the given context; the same destination for every member of a batch.
Attempt = Callable[[CallContext, UpstreamCall], Awaitable[UpstreamReply]]


@dataclass(slots=True)
class Member:
    """One client request waiting in a batch: its context, its own call, its inputs, its answer-to-be."""

    ctx: CallContext
    call: UpstreamCall
    inputs: Inputs
    future: asyncio.Future[UpstreamReply]


@dataclass(slots=True)
class Batch:
    """Requests gathered for one shared call; closed to newcomers once its task is started."""

    key: GroupKey
    policy: BatchPolicy
    attempt: Attempt
    label: str  # the provider's name, for the metrics
    limit: int
    members: list[Member] = field(default_factory=list)
    size: int = 0  # inputs gathered
    tokens: int = 0  # their estimated tokens
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None

    def add(self, member: Member) -> None:
        """Take a member in."""
        self.members.append(member)
        self.size += len(member.inputs.items)
        self.tokens += member.inputs.tokens

    def remove(self, member: Member) -> None:
        """Let a member go before the call is made (its client left)."""
        self.members.remove(member)
        self.size -= len(member.inputs.items)
        self.tokens -= member.inputs.tokens


def _settle(member: Member, reply: UpstreamReply | None = None, error: BaseException | None = None) -> None:
    """Answer a member still waiting (one whose client left has a cancelled future: nothing to do)."""
    if member.future.done():
        return
    if error is not None:
        member.future.set_exception(error)
    elif reply is not None:
        member.future.set_result(reply)


async def run_batch(batch: Batch, metrics: BatchMetrics) -> None:
    """Make the batch's call (shared, or its one member's own) and answer every member."""
    members, label = list(batch.members), batch.label
    metrics.requests.labels(label).observe(len(members))
    metrics.inputs.labels(label).observe(batch.size)
    if len(members) == 1:
        await alone(batch, members[0])
        return
    scratch = CallContext(f"batch_{os.urandom(12).hex()}", "POST", "/v1/embeddings")
    try:
        parts = await shared_call(batch, members, scratch)
    except NetraError as exc:
        note_shared(batch, members, scratch)
        await shared_failed(batch, members, exc, scratch.upstream_attempts, metrics)
        return
    except Exception as exc:  # a defect: each member's request reports it; none may wait forever
        for member in members:
            _settle(member, error=exc)
        return
    note_shared(batch, members, scratch)
    metrics.saved.labels(label).inc(len(members) - 1)
    for member, part in zip(members, parts, strict=True):
        _settle(member, UpstreamReply(part.body, part.usage))


async def shared_failed(
    batch: Batch, members: list[Member], error: NetraError, attempts: int, metrics: BatchMetrics
) -> None:
    """A refused shared call is retried member by member (only the offender fails); any other failure fails all."""
    if not request_fault(error):
        for member in members:
            _settle(member, error=copy_error(error))
        return
    metrics.split.labels(batch.label).inc()
    await asyncio.gather(*(alone(batch, member, attempts) for member in members))


async def alone(batch: Batch, member: Member, attempts_before: int = 0) -> None:
    """A member's own call with its own body, on its own context (after `attempts_before` shared attempts)."""
    if member.future.done():
        return  # its client left before the call was made
    member.ctx.upstream_attempts = 0  # counted afresh, whether the attempt machinery counts up or sets the number
    try:
        reply = await batch.attempt(member.ctx, member.call)
    except Exception as exc:  # every failure belongs to the member waiting for it, whatever it is
        _settle(member, error=exc)
    else:
        _settle(member, reply)
    finally:
        member.ctx.upstream_attempts += attempts_before


async def shared_call(batch: Batch, members: list[Member], scratch: CallContext) -> list[Part]:
    """Every member's part of one upstream call carrying all their inputs (`scratch` counts its attempts)."""
    first = members[0]
    scratch.tenant_id, scratch.tenant_name = first.ctx.tenant_id, first.ctx.tenant_name
    scratch.served_model, scratch.provider = first.ctx.served_model, first.ctx.provider
    scratch.served_name = first.ctx.served_name
    body = merged_body(first.call.body, [member.inputs for member in members])
    call = UpstreamCall(first.call.endpoint, body, first.call.model, False, scratch.request_id)
    reply = await batch.attempt(scratch, call)
    sizes = [len(member.inputs.items) for member in members]
    return split_answer(reply.body, sizes, [size for member in members for size in member.inputs.sizes])


def note_shared(batch: Batch, members: list[Member], scratch: CallContext) -> None:
    """What each member's ledger row says of the shared call: attempts, the deployment that served, the policy."""
    for member in members:
        ctx = member.ctx
        ctx.upstream_called, ctx.upstream_attempts = True, scratch.upstream_attempts
        ctx.served_model, ctx.provider = scratch.served_model, scratch.provider
        ctx.served_name = scratch.served_name
        if not ctx.policy_id:  # a cache policy that looked the request up first keeps its name on the row
            ctx.policy_id, ctx.policy_version = batch.policy.id or "", batch.policy.version


def copy_error(error: NetraError) -> NetraError:
    """The same error for another member's task to raise, without sharing (and growing) one traceback."""
    copy = type(error).__new__(type(error), *error.args)
    copy.__dict__.update(error.__dict__)
    return copy
