"""Where a non-streamed call goes: through the embeddings micro-batcher when a batch policy matches, else its own way.

The handler's direct path and the cache's miss path both send here, so a request the cache did not answer is
batched too. Every upstream call, shared or not, goes through the same attempt machinery (`retrying`).
"""

from __future__ import annotations

from gateway.cache_plan import features_of
from gateway.context import CallContext
from gateway.providers.base import Provider, UpstreamCall, UpstreamReply
from gateway.state import GatewayState
from gateway.upstream import retrying
from policies import BatchPolicy, decide


def batch_policy(state: GatewayState, ctx: CallContext, call: UpstreamCall) -> BatchPolicy | None:
    """The batch policy acting on a non-streamed embeddings call, if one matches."""
    if call.endpoint != "embeddings" or call.stream:
        return None
    return decide(features_of(ctx, call), state.policies.snapshot).batch


async def send_reply(
    state: GatewayState, ctx: CallContext, call: UpstreamCall, provider: Provider, body: bytes
) -> UpstreamReply:
    """The provider's reply to a non-streamed call (`body` as the provider encodes it), batched if a policy says so."""

    async def attempt(on: CallContext, sent: UpstreamCall) -> UpstreamReply:
        # The request's own call keeps the body already encoded; a shared call is encoded by the provider.
        encoded = body if sent is call else None
        return await retrying(state, on, provider, lambda: provider.send(sent, encoded))

    policy = batch_policy(state, ctx, call)
    if policy is None:
        return await attempt(ctx, call)
    destination = (provider.config.name, call.model.upstream_name)
    return await state.batcher.send(ctx, call, policy, destination, attempt)
