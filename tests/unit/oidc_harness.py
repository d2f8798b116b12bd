"""The admin app with single sign-on against the fake issuer, and browsers (httpx clients following redirects
between the two, each with its own cookie jar)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Receive, Scope, Send

from core.settings import Settings
from tests.fake_oidc import FakeIssuer
from tests.unit.admin_harness import Admin, DateClock, running_admin

ADMIN_URL = "http://admin.test"
CALLBACK = f"{ADMIN_URL}/api/auth/oidc/callback"
ROLE_MAP = {"domains": {"example.com": "viewer"},
            "claims": {"groups": {"netra-admins": "admin", "finance": "finance"}}}
ADA = {"sub": "248289761001", "email": "Ada@Example.com", "email_verified": True, "name": "Ada",
       "groups": ["staff", "netra-admins"]}


def oidc_settings(settings: Settings, issuer: FakeIssuer, **changes: Any) -> Settings:
    """The settings with single sign-on on, against this issuer."""
    return settings.model_copy(update={
        "oidc_issuer": issuer.url, "oidc_client_id": issuer.client_id,
        "oidc_client_secret": SecretStr(issuer.client_secret), "oidc_redirect_base_url": ADMIN_URL,
        "oidc_role_map": json.dumps(ROLE_MAP), **changes,
    })


@dataclass
class Sso:
    """The admin app, the issuer, and their shared clock."""

    admin: Admin
    issuer: FakeIssuer

    async def browser(self, follow: bool = True) -> httpx.AsyncClient:
        """A browser: requests to the admin app go to it in-process, the others over loopback to the issuer."""
        admin = self.admin

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(admin.state)  # as uvicorn does: each request a copy of the lifespan's state
            await admin.app(scope, receive, send)

        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
        client = httpx.AsyncClient(mounts={ADMIN_URL: transport}, base_url=ADMIN_URL, follow_redirects=follow,
                                   trust_env=False)
        return await admin.stack.enter_async_context(client)

    async def sign_in(self, browser: httpx.AsyncClient | None = None) -> httpx.Response:
        """Click "Sign in with SSO" and follow the redirects to wherever they end."""
        browser = browser or await self.browser()
        return await browser.get("/api/auth/oidc/login")

    async def me(self, browser: httpx.AsyncClient) -> httpx.Response:
        """What the login page does next: refresh for an access token, then GET /api/me."""
        csrf = browser.cookies.get("netra_csrf", domain="admin.test") or ""
        refreshed = await browser.post("/api/auth/refresh", headers={"x-csrf-token": csrf})
        if refreshed.status_code != 200:
            return refreshed
        token = refreshed.json()["access_token"]
        return await browser.get("/api/me", headers={"authorization": f"Bearer {token}"})


@asynccontextmanager
async def running_sso(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], **changes: Any
) -> AsyncIterator[Sso]:
    """The fake issuer (approving Ada) and the admin app configured for it, sharing one clock."""
    clock = DateClock()
    issuer = await FakeIssuer(CALLBACK, clock=clock, user=dict(ADA)).start()
    try:
        async with running_admin(oidc_settings(settings, issuer, **changes), sessions, clock) as admin:
            yield Sso(admin, issuer)
    finally:
        await issuer.close()
