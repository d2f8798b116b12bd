"""The admin app over httpx on SQLite or this test's PostgreSQL database, a user per role signed in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import create_engine, create_sessionmaker
from core.migrate import upgrade_relational_async
from core.settings import Settings
from core.users import ROLES
from tests.unit.admin_harness import Admin, DateClock, running_admin
from tests.unit.helpers import assert_envelope

# Names a browser would run or a query would break on if they were ever treated as anything but data.
HOSTILE = "<script>alert('x')</script> \"quoted\" O'Brien; DROP TABLE tenants;--"


@dataclass
class Api:
    """The running admin app, its HTTP client, and an Authorization header per role."""

    admin: Admin
    http: httpx.AsyncClient
    headers: dict[str, dict[str, str]]

    async def call(self, method: str, url: str, role: str | None = "admin", **kwargs: Any) -> httpx.Response:
        """A request as a role (None: anonymous), by bearer token alone: the page session cookies a sign-in left on
        the client are dropped, or an anonymous request would be signed in by them."""
        headers = self.headers[role] if role is not None else {}
        self.http.cookies.clear()
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def ok(self, method: str, url: str, role: str = "admin", status: int = 200, **kwargs: Any) -> Any:
        """A request that must succeed with `status`; its JSON."""
        response = await self.call(method, url, role, **kwargs)
        assert response.status_code == status, (method, url, response.status_code, response.text)
        return response.json()

    async def refused(
        self, method: str, url: str, role: str | None, status: int, code: str, param: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """A request that must be refused with the envelope; its error object."""
        response = await self.call(method, url, role, **kwargs)
        assert response.status_code == status, (method, url, response.status_code, response.text)
        kinds = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
                 404: "invalid_request_error", 409: "invalid_request_error", 503: "server_error"}
        return assert_envelope(response.json(), type=kinds[status], code=code, param=param)

    async def audit(self, action: str) -> list[dict[str, Any]]:
        """The audit entries of one action, oldest first."""
        entries = (await self.ok("GET", "/api/audit?limit=1000"))["data"]
        return [e for e in reversed(entries) if e["action"] == action]


@dataclass
class Database:
    """Settings and migrated sessions on one relational database."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]


@pytest.fixture
async def sqlite_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Migrated sessions on this test's SQLite file."""
    await upgrade_relational_async(settings)
    engine = create_engine(settings)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> Database:
    """SQLite, or this test's own PostgreSQL database (the integration fixtures pg_settings and sessions)."""
    if request.param == "postgres":
        return Database(request.getfixturevalue("pg_settings"), request.getfixturevalue("sessions"))
    return Database(request.getfixturevalue("settings"), request.getfixturevalue("sqlite_sessions"))


@asynccontextmanager
async def running_api(database: Database, clock: DateClock | None = None, **options: Any) -> AsyncIterator[Api]:
    """The admin app on the database, with admin@, finance@ and viewer@example.com signed in."""
    async with running_admin(database.settings, database.sessions, clock, **options) as admin:
        for role in ROLES:
            await admin.add_user(f"{role}@example.com", role)
        headers = {role: await admin.token(f"{role}@example.com") for role in ROLES}
        yield Api(admin, await admin.client(), headers)


@pytest.fixture
async def api(database: Database) -> AsyncIterator[Api]:
    """The admin app on SQLite and on PostgreSQL."""
    async with running_api(database) as running:
        yield running
