"""The admin app with its dashboard reading a real (embedded) ledger, and a signed-in browser-like client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from admin.ledger import SharedReader
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore
from core.settings import Settings
from tests.unit.admin_harness import Admin, running_admin
from tests.unit.conftest import Database

HTML = {"accept": "text/html,application/xhtml+xml"}


def open_test_ledger(settings: Settings) -> ClickHouseStore:
    """This test's own database in the session's chDB, migrated (the same process may open it again)."""
    store = ClickHouseStore.open(settings)
    upgrade_clickhouse(store)
    return store


@dataclass
class Dashboard:
    """The running admin app and the ledger store its pages read."""

    admin: Admin
    store: ClickHouseStore

    async def browser(self, role: str = "admin") -> httpx.AsyncClient:
        """A new client signed in as a user of `role` through the login API (so it holds the session cookies)."""
        email = f"{role}-{id(object())}@example.com"
        await self.admin.add_user(email, role)
        http = await self.admin.new_client()
        response = await http.post("/api/auth/login", json={"email": email, "password": "correct horse battery staple"})
        assert response.status_code == 200, response.text
        http.headers.update(HTML)
        return http


@asynccontextmanager
async def running_dashboard(settings: Settings, database: Database) -> AsyncIterator[Dashboard]:
    """The admin app whose pages read the test's chDB database (left open: chDB is shared by the whole process)."""
    store = open_test_ledger(settings)
    try:
        async with running_admin(settings, database.sessions, ledger=SharedReader(store)) as admin:
            yield Dashboard(admin, store)
    finally:
        store.close()
