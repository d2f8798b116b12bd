"""The admin app in-process (its real lifespan, a migrated SQLite or PostgreSQL database) behind httpx clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Receive, Scope, Send

from admin.app import create_app
from core.passwords import HashCost, hash_password
from core.settings import Settings
from core.user_store import create_user

PASSWORD = "correct horse battery staple"
# Argon2id at its lowest cost: these tests are about sign-in behaviour, not the hash's strength (which
# test_admin_passwords checks at the default cost). Users share one hash of the one password.
QUICK_HASHING = {"admin_password_hash_time_cost": 1, "admin_password_hash_memory_kib": 1024}
PASSWORD_HASH = hash_password(PASSWORD, HashCost(time_cost=1, memory_kib=1024))
ORIGIN = "http://admin.test"


class DateClock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Admin:
    """A running admin app: clients (one per client address) on it, its clock and its database."""

    app: Any
    state: dict[str, Any]
    clock: DateClock
    sessions: async_sessionmaker[AsyncSession]
    stack: AsyncExitStack
    clients: dict[tuple[str, str], httpx.AsyncClient] = field(default_factory=dict)

    async def client(self, address: str = "203.0.113.7", scheme: str = "http") -> httpx.AsyncClient:
        """A client calling from `address` (with its own cookie jar); the same one on each call."""
        if (address, scheme) not in self.clients:
            self.clients[address, scheme] = await self.new_client(address, scheme)
        return self.clients[address, scheme]

    async def new_client(
        self, address: str = "203.0.113.7", scheme: str = "http", raise_app_exceptions: bool = True
    ) -> httpx.AsyncClient:
        """A client with an empty cookie jar of its own (seeing 500s instead of the exception when told)."""
        transport = httpx.ASGITransport(app=self._with_state, client=(address, 40000),
                                        raise_app_exceptions=raise_app_exceptions)
        made = httpx.AsyncClient(transport=transport, base_url=f"{scheme}://admin.test")
        return await self.stack.enter_async_context(made)

    async def _with_state(self, scope: Scope, receive: Receive, send: Send) -> None:
        # What uvicorn does: each request gets a shallow copy of the lifespan's state.
        scope["state"] = dict(self.state)
        await self.app(scope, receive, send)

    async def add_user(self, email: str, role: str) -> str:
        """A user with the shared password; its id."""
        async with self.sessions() as session:
            user = await create_user(session, email, PASSWORD_HASH, role, actor="test")
        return user.id

    async def login(self, email: str, password: str = PASSWORD, address: str = "203.0.113.7") -> httpx.Response:
        """POST /api/auth/login from an address."""
        http = await self.client(address)
        return await http.post("/api/auth/login", json={"email": email, "password": password})

    async def token(self, email: str) -> dict[str, str]:
        """Sign in and return the Authorization header for the access token."""
        response = await self.login(email)
        assert response.status_code == 200, response.text
        return {"authorization": f"Bearer {response.json()['access_token']}"}


@asynccontextmanager
async def running_admin(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], clock: DateClock | None = None, **options: Any,
) -> AsyncIterator[Admin]:
    """The admin app with its lifespan entered, on a database the caller migrated."""
    clock = clock or DateClock()
    app = create_app(settings.model_copy(update=QUICK_HASHING), clock, **options)
    async with AsyncExitStack() as stack:
        state = await stack.enter_async_context(app.router.lifespan_context(app))
        yield Admin(app, dict(state or {}), clock, sessions, stack)
