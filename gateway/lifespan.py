"""Building the gateway's state at start-up and tearing it down at shutdown, in one AsyncExitStack."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aiohttp
from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore
from core.config import GatewayConfig, ModelConfig, ProviderConfig, load_config
from core.db import create_engine, create_sessionmaker
from core.logs import AccessLog
from core.metrics import GatewayMetrics
from core.price_versions import save_price_version
from core.prices import PriceTable, load_table
from core.secret_key import load_secret
from core.settings import Settings
from gateway.auth import KeyAuthenticator
from gateway.cache import CacheBackend, open_cache
from gateway.coalesce import Coalescer
from gateway.credential_holder import CredentialHolder, follow_credentials
from gateway.deferred import DeferredLane
from gateway.embed_batch import EmbeddingBatcher
from gateway.ledger import Ledger, LedgerWriter, NullLedgerWriter, RowSink
from gateway.limits import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from gateway.policy_holder import PolicyHolder
from gateway.providers import build_providers
from gateway.providers.base import Provider
from gateway.providers.guard import GuardedResolver, file_hosts
from gateway.providers.http import Timeouts, create_session
from gateway.routing import Deployments
from gateway.state import GatewayState

log = logging.getLogger("netra.gateway")
SinkWrapper = Callable[[RowSink], RowSink]
# Redis connections per gateway process (cache lookups, limit checks, policy notices); more requests wait.
REDIS_CONNECTIONS = 128


def price_table(config: GatewayConfig) -> PriceTable:
    """The shipped prices with netra.yaml's overrides, keyed by the model name sent upstream."""
    overrides = {m.upstream_name: m.price for m in config.models if m.price is not None}
    return load_table(overrides, datetime.now(UTC).date().isoformat())


async def record_prices(config: GatewayConfig, sessions: async_sessionmaker[AsyncSession]) -> PriceTable:
    """The price table in force, stored under its version so every ledger row can be re-priced later."""
    prices = price_table(config)
    async with sessions() as session:
        await save_price_version(session, prices)
    return prices


async def open_store(settings: Settings, stack: AsyncExitStack) -> ClickHouseStore | None:
    """The analytics store, migrated, when this process ingests (None: ledger off, or the ledger process ingests)."""
    if not settings.ledger_enabled or settings.ledger_ingest == "process":
        return None
    store = await asyncio.to_thread(ClickHouseStore.open, settings)
    stack.callback(store.close)
    await store.run(upgrade_clickhouse, store)
    return store


async def open_ledger(
    settings: Settings, store: ClickHouseStore | None, metrics: GatewayMetrics, wrap_sink: SinkWrapper | None,
    stack: AsyncExitStack,
) -> Ledger:
    """The ledger writer (or the null one when the ledger is off), flushed and closed with the stack."""
    if not settings.ledger_enabled:
        ledger: Ledger = NullLedgerWriter()
    else:
        sink = None if store is None else wrap_sink(store) if wrap_sink else store
        ledger = LedgerWriter(settings, sink, metrics.registry)
        await ledger.start()
    stack.push_async_callback(ledger.close, settings.graceful_shutdown_timeout)
    return ledger


def open_database(settings: Settings, stack: AsyncExitStack) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """The relational database's engine and session factory; disposed with the stack."""
    engine = create_engine(settings)
    stack.push_async_callback(engine.dispose)
    return engine, create_sessionmaker(engine)


def open_access_log(stack: AsyncExitStack) -> AccessLog:
    """The access log on stderr; flushed with the stack."""
    access_log = AccessLog(sys.stderr.buffer)
    stack.callback(access_log.flush)
    return access_log


def open_redis(settings: Settings, stack: AsyncExitStack) -> Redis | None:
    """The Redis client when configured; closed with the stack."""
    if not settings.redis_url:
        return None
    # Short socket timeouts: a Redis that stops answering must not hold requests; limits fall back to local.
    # A bounded pool that waits for a free connection: a burst of requests (each a cache lookup and a limit check)
    # must queue for a moment, not fail with "too many connections" and put the cache and limits into back-off.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=REDIS_CONNECTIONS, timeout=0.5, socket_timeout=0.5,
        socket_connect_timeout=0.5,
    )
    redis = Redis(connection_pool=pool)
    stack.push_async_callback(pool.aclose)
    stack.push_async_callback(redis.aclose)
    return redis


def open_limiter(redis: Redis | None) -> RateLimiter:
    """Redis-backed limits when Redis is configured, process-local ones otherwise."""
    return RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter()


async def open_policies(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis | None, stack: AsyncExitStack
) -> PolicyHolder:
    """This process's policy snapshot, loaded and then kept current (poll, and Redis notices when configured)."""
    holder = PolicyHolder(sessions, redis, settings.policy_poll_interval)
    await holder.start()
    stack.push_async_callback(holder.close)
    return holder


def open_response_cache(
    settings: Settings, redis: Redis | None, fills: set[asyncio.Task[None]], stack: AsyncExitStack
) -> CacheBackend:
    """The response cache; at shutdown the stream fills still running are finished before it closes."""
    cache = open_cache(settings, redis)

    async def close() -> None:
        if fills:
            await asyncio.wait(set(fills), timeout=settings.graceful_shutdown_timeout)
        await cache.close()

    stack.push_async_callback(close)
    return cache


def first_deployments(config: GatewayConfig) -> dict[str, ModelConfig]:
    """Each model name once, with its first deployment (what /v1/models lists and requests resolve to)."""
    models: dict[str, ModelConfig] = {}
    for model in config.models:
        models.setdefault(model.name, model)
    return models


def open_batcher(settings: Settings, metrics: GatewayMetrics, stack: AsyncExitStack) -> EmbeddingBatcher:
    """The embeddings micro-batcher; at shutdown the batches still gathering are sent and their calls finished."""
    batcher = EmbeddingBatcher(metrics.registry)
    stack.push_async_callback(batcher.close, settings.graceful_shutdown_timeout)
    return batcher


def open_http(
    settings: Settings, config: GatewayConfig, stack: AsyncExitStack
) -> tuple[aiohttp.ClientSession, GuardedResolver]:
    """The one pooled upstream HTTP session, closed last of the request path's clients, and its SSRF guard."""
    guard = GuardedResolver(file_hosts(config))
    http = create_session(settings, guard)
    stack.push_async_callback(http.close)
    return http, guard


async def open_credentials(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], providers: dict[str, Provider],
    redis: Redis | None, upstream: tuple[aiohttp.ClientSession, GuardedResolver], stack: AsyncExitStack,
) -> None:
    """Admins' credential overrides applied to the adapters before the first request, and followed from then on."""
    http, guard = upstream
    holder = CredentialHolder(sessions, providers, guard, http, partial(load_secret, settings))
    follower = await follow_credentials(holder, redis, settings.policy_poll_interval)
    stack.push_async_callback(follower.close)


async def build_state(
    settings: Settings, env: Mapping[str, str], stack: AsyncExitStack, wrap_sink: SinkWrapper | None = None
) -> GatewayState:
    """Every client the gateway needs; each is closed by the stack in reverse order."""
    config = load_config(settings, env)
    engine, sessions = open_database(settings, stack)
    redis = open_redis(settings, stack)
    http, _ = upstream = open_http(settings, config, stack)
    metrics, access_log = GatewayMetrics(), open_access_log(stack)
    store = await open_store(settings, stack)
    prices = await record_prices(config, sessions)
    ledger = await open_ledger(settings, store, metrics, wrap_sink, stack)
    policies = await open_policies(settings, sessions, redis, stack)
    fills: set[asyncio.Task[None]] = set()
    providers = build_providers(config, http, Timeouts.from_settings(settings))
    batcher = open_batcher(settings, metrics, stack)
    await open_credentials(settings, sessions, providers, redis, upstream, stack)
    return GatewayState(
        settings=settings, config=config, models=first_deployments(config), providers=providers,
        deployments=Deployments(config, providers, settings, metrics),
        auth=KeyAuthenticator(sessions, settings.key_cache_ttl), limiter=open_limiter(redis), ledger=ledger,
        prices=prices, metrics=metrics, engine=engine, sessions=sessions, store=store, redis=redis,
        started_at=int(time.time()), access_log=access_log, policies=policies,
        cache=open_response_cache(settings, redis, fills, stack), coalescer=Coalescer(), batcher=batcher, fills=fills,
    )


async def open_deferred(state: GatewayState, stack: AsyncExitStack) -> DeferredLane:
    """The deferred lane's worker; stopped before the ledger closes (the stack unwinds in reverse)."""
    def configs() -> dict[str, ProviderConfig]:
        return {name: provider.config for name, provider in state.providers.items()}

    lane = DeferredLane(state.settings, state.sessions, configs, state.ledger, state.prices)
    await lane.start(stack)
    return lane


def lifespan_for(settings: Settings, env: Mapping[str, str], wrap_sink: SinkWrapper | None = None) -> Any:
    """The app's lifespan: state up before the first request, everything flushed and closed after the last."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            state = await build_state(settings, env, stack, wrap_sink)
            await open_deferred(state, stack)
            # Everything built so far lives as long as the app: keep it out of every future GC pass.
            gc.collect()
            gc.freeze()
            log.info("gateway ready", extra={"models": len(state.models), "providers": len(state.providers)})
            if not state.models:
                log.warning("no models configured: set OPENAI_API_KEY or ANTHROPIC_API_KEY, or write netra.yaml")
            yield {"netra": state}
            log.info("gateway stopping: flushing the ledger")

    return lifespan
