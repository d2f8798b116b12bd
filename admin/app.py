"""The admin app: create_app(settings) builds it; its state is built in the lifespan."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from admin.dashboard.web import open_pages
from admin.errors import http_error, netra_error, server_error
from admin.ledger import LedgerAccess, OpenPerUse
from admin.oidc_provider import oidc_provider
from admin.permissions import PERMISSIONS, PermissionGuard
from admin.routes import routes
from admin.secret import load_signing_key
from admin.security import SecurityHeaders
from admin.state import AdminState, Clock
from core.db import create_engine, create_sessionmaker
from core.errors import NetraError
from core.login_throttle import Throttle
from core.models import utcnow
from core.passwords import HashCost, hash_password
from core.settings import Settings

Lifespan = Callable[[Starlette], Any]


class AdminApp(Starlette):
    """Starlette with the security headers outside even its server-error layer, so a 500 carries them too."""

    def build_middleware_stack(self) -> ASGIApp:
        """Starlette's stack, wrapped."""
        return SecurityHeaders(super().build_middleware_stack())


def throttle_of(settings: Settings) -> Throttle:
    """The login throttling the settings ask for."""
    return Throttle(timedelta(seconds=settings.admin_login_window), settings.admin_login_max_failures,
                    settings.admin_login_max_failures_per_address)


def open_redis(settings: Settings, stack: AsyncExitStack) -> Redis | None:
    """The Redis client policy changes are announced on, when Redis is configured; closed with the stack."""
    if not settings.redis_url:
        return None
    redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    stack.push_async_callback(redis.aclose)
    return redis


def lifespan_for(settings: Settings, clock: Clock, ledger: LedgerAccess | None = None) -> Lifespan:
    """Build the state at start-up (engine, signing key) and dispose of it at shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        async with AsyncExitStack() as stack:
            engine = create_engine(settings)
            stack.push_async_callback(engine.dispose)
            key = await asyncio.to_thread(load_signing_key, settings)
            cost = HashCost.of(settings)
            decoy = await asyncio.to_thread(hash_password, secrets.token_urlsafe(16), cost)
            oidc = await stack.enter_async_context(oidc_provider(settings, clock))
            access = ledger or OpenPerUse(settings)
            pages = open_pages(access)
            state = AdminState(settings=settings, engine=engine, sessions=create_sessionmaker(engine),
                               signing_key=key, clock=clock, throttle=throttle_of(settings), hash_cost=cost,
                               unknown_user_hash=decoy, oidc=oidc, ledger=access,
                               redis=open_redis(settings, stack), pages=pages)
            yield {"admin": state}

    return lifespan


def create_app(
    settings: Settings | None = None, clock: Clock | None = None,
    permissions: Mapping[tuple[str, str], str] = PERMISSIONS, ledger: LedgerAccess | None = None,
) -> Starlette:
    """The admin app (settings read from the environment when not given); run `netra migrate` before serving.

    `ledger`: where invoices, analytics and the pages read the ledger (default: the configured ClickHouse, opened
    for each use).
    """
    settings = settings or Settings()
    app = AdminApp(
        routes=routes(),
        middleware=[Middleware(PermissionGuard, table=permissions)],
        exception_handlers={NetraError: netra_error, HTTPException: http_error, Exception: server_error},
        lifespan=lifespan_for(settings, clock or utcnow, ledger),
    )
    app.router.redirect_slashes = False
    return app
