"""Calling the provider: attempts, retried while nothing has reached the client yet."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.errors import NetraError
from gateway.context import CallContext
from gateway.providers.base import Provider, is_retryable
from gateway.state import GatewayState

T = TypeVar("T")


async def retrying(
    state: GatewayState, ctx: CallContext, provider: Provider, start: Callable[[], Awaitable[T]]
) -> T:
    """Call the provider, retrying failures that happened before anything reached the client."""
    attempts = max(1, state.settings.upstream_attempts)
    loop = asyncio.get_running_loop()
    ctx.upstream_called = True
    for number in range(1, attempts + 1):
        ctx.upstream_attempts = number
        started = loop.time()
        try:
            return await start()
        except NetraError as exc:
            if number == attempts or not is_retryable(exc):
                raise
        finally:
            m = state.metrics
            m.child(m.upstream_latency, provider.config.name).observe(loop.time() - started)
        await asyncio.sleep(random.uniform(0.05, 0.25) * number)  # noqa: S311 - jitter, not crypto
    raise AssertionError("unreachable")
