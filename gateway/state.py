"""The gateway's app state: every client and table, built in the lifespan, reached through get_state()."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.types import Scope

from core.clickhouse import ClickHouseStore
from core.config import GatewayConfig, ModelConfig
from core.logs import AccessLog
from core.metrics import GatewayMetrics
from core.prices import PriceTable
from core.settings import Settings
from gateway.auth import KeyAuthenticator
from gateway.cache import CacheBackend
from gateway.coalesce import Coalescer
from gateway.context import CallContext
from gateway.embed_batch import EmbeddingBatcher
from gateway.flight import Flight
from gateway.ledger import Ledger
from gateway.limits import RateLimiter
from gateway.policy_holder import PolicyHolder
from gateway.providers.base import Provider
from gateway.routing import Deployments


@dataclass(slots=True)
class GatewayState:
    """Everything a request handler may use; nothing of it lives at module level."""

    settings: Settings
    config: GatewayConfig
    models: dict[str, ModelConfig]
    providers: dict[str, Provider]
    # Every deployment of every model, with its breaker, retry budget and requests in flight (routing/).
    deployments: Deployments
    auth: KeyAuthenticator
    limiter: RateLimiter
    ledger: Ledger
    prices: PriceTable
    metrics: GatewayMetrics
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: ClickHouseStore | None
    redis: Redis | None
    started_at: int
    access_log: AccessLog
    policies: PolicyHolder
    cache: CacheBackend
    coalescer: Coalescer
    batcher: EmbeddingBatcher  # embeddings micro-batching (batch policies)
    # Cache fills of streams still being written (kept referenced until done; awaited at shutdown).
    fills: set[asyncio.Task[None]] = field(default_factory=set)
    # Streams whose answer is being stored, by in-flight key, with the leader's request id: a request arriving
    # after the flight ended but before its entry is stored replays the flight instead of calling the provider.
    filling: dict[str, tuple[Flight, str]] = field(default_factory=dict)


def state_of(scope: Scope) -> GatewayState:
    """The state from an ASGI scope (the lifespan put it there)."""
    return cast(GatewayState, scope["state"]["netra"])


def get_state(request: Request) -> GatewayState:
    """The state of the app serving this request."""
    return state_of(request.scope)


def get_ctx(request: Request) -> CallContext:
    """The per-request context the middleware created."""
    return cast(CallContext, request.scope["netra.ctx"])
