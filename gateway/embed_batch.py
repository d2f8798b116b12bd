"""Embeddings micro-batching: concurrent compatible embedding requests go upstream as one call and are split back.

`EmbeddingBatcher` is a per-process registry of open batches (one object per app, built in the lifespan), keyed by
`gateway.embed_inputs.group_key`. The first request of a key opens a batch and waits up to the policy's `window_ms`
for company; the batch is sent when the window ends or once `max_inputs` inputs are gathered (a request that would
not fit sends the open batch first and opens the next). The call runs in a task of its own (`embed_flush`): a member
whose client leaves before it is sent simply drops out; once sent, the call goes on for the others, and is cancelled
only when nobody waits for it any more. A request batching must not touch (an input shape it does not know, or as
many inputs as a batch may hold) goes straight upstream.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from gateway.context import CallContext
from gateway.embed_flush import Attempt, Batch, Member, run_batch
from gateway.embed_inputs import MAX_BATCH_TOKENS, GroupKey, group_key, inputs_of, max_inputs
from gateway.embed_metrics import BatchMetrics
from gateway.providers.base import UpstreamCall, UpstreamReply
from policies import BatchPolicy

__all__ = ["Attempt", "EmbeddingBatcher"]


class EmbeddingBatcher:
    """The per-process registry of embedding requests waiting to share an upstream call."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.metrics = BatchMetrics(registry)
        self._open: dict[GroupKey, Batch] = {}
        self._running: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """Batches still gathering members."""
        return len(self._open)

    async def send(
        self, ctx: CallContext, call: UpstreamCall, policy: BatchPolicy, destination: tuple[str, ...], attempt: Attempt
    ) -> UpstreamReply:
        """The request's own answer: from a shared call when company arrives in time, else from its own call.

        `destination` names where `attempt` sends a call (only calls with the same one share a batch): the provider
        and upstream model today, the route (its models, in order) once calls are routed.
        """
        inputs = inputs_of(call.body.get("input"))
        limit = max_inputs(policy.max_inputs)
        if call.stream or inputs is None or len(inputs.items) >= limit or inputs.tokens >= MAX_BATCH_TOKENS:
            return await attempt(ctx, call)
        member = Member(ctx, call, inputs, asyncio.get_running_loop().create_future())
        batch = self._place(member, policy, destination, attempt, limit)
        try:
            return await member.future
        except asyncio.CancelledError:
            self._leave(batch, member)
            raise

    def _place(
        self, member: Member, policy: BatchPolicy, destination: tuple[str, ...], attempt: Attempt, limit: int
    ) -> Batch:
        """Put the member in its key's open batch (sending that one first when the member would not fit)."""
        label = f"{policy.id or policy.name}@{policy.version}"
        key = group_key(member.ctx.tenant_id, destination, label, member.call.body, member.inputs.kind)
        batch = self._open.get(key)
        if batch is not None and not _fits(batch, member):
            self._flush(batch)
            batch = None
        if batch is None:
            batch = self._open[key] = Batch(key, policy, attempt, member.call.model.provider, limit)
            batch.timer = asyncio.get_running_loop().call_later(policy.window_ms / 1000, self._flush, batch)
        batch.add(member)
        if batch.size >= batch.limit:
            self._flush(batch)
        return batch

    def _flush(self, batch: Batch) -> None:
        """Close the batch to newcomers and start its call (a batch everyone left is just dropped)."""
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]
        if batch.timer is not None:
            batch.timer.cancel()
        if batch.task is not None or not batch.members:
            return
        batch.task = asyncio.get_running_loop().create_task(run_batch(batch, self.metrics), name="netra-embed-batch")
        self._running.add(batch.task)
        batch.task.add_done_callback(self._running.discard)

    def _leave(self, batch: Batch, member: Member) -> None:
        """A member's client left: before the call it drops out; after, the last one out cancels the call."""
        if batch.task is None:
            batch.remove(member)
            if not batch.members:
                self._flush(batch)
        elif all(other.future.done() for other in batch.members) and not batch.task.done():
            batch.task.cancel()

    async def close(self, grace: float) -> None:
        """Send the batches still gathering and wait (up to `grace` seconds) for the calls in flight."""
        for batch in list(self._open.values()):
            self._flush(batch)
        if not self._running:
            return
        _, pending = await asyncio.wait(set(self._running), timeout=grace)
        for task in pending:
            task.cancel()


def _fits(batch: Batch, member: Member) -> bool:
    """Whether the member's inputs still fit in the batch (OpenAI's input and token limits, the policy's size)."""
    inputs = member.inputs
    return batch.size + len(inputs.items) <= batch.limit and batch.tokens + inputs.tokens <= MAX_BATCH_TOKENS
