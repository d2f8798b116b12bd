"""A running gateway follows the admins' provider credentials without a restart: a rotated key, a new base URL
(calls in flight finish where they started), an override it cannot open, and a name that rebinds to loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from core.credential_crypto import credential_key, seal
from core.credentials import change_override, last_four
from core.db import create_engine, create_sessionmaker
from core.settings import Settings
from tests.fake_upstream import FakeUpstream
from tests.integration.conftest import REDIS_URL
from tests.integration.harness import make_tenants, serve
from tests.unit.admin_harness import Admin, running_admin

RIGHT = "sk-right-upstream-key-7777"
WRONG = "sk-wrong-upstream-key-0000"
CONFIG = """
providers:
  - {{name: fake, kind: openai, base_url: "{url}/v1", api_key: "{key}"}}
models:
  - {{name: gpt-4o-mini, provider: fake}}
  - {{name: slow, provider: fake, upstream: gpt-4o-mini-slow-1500}}
"""
POLL = 0.2
# A change must reach the gateway within a few polls; generous, so a loaded machine does not fail the test.
WITHIN = 10.0


@dataclass
class Live:
    """A gateway and an admin app on one database and data dir, and the fake provider behind the gateway."""

    gateway: httpx.AsyncClient
    admin: Admin
    fake: FakeUpstream
    settings: Settings
    key: str

    async def chat(self, model: str = "gpt-4o-mini") -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        return await self.gateway.post("/v1/chat/completions", json=body,
                                       headers={"authorization": f"Bearer {self.key}"})

    async def as_admin(self, method: str, url: str, json: object = None) -> httpx.Response:
        http = await self.admin.client()
        response = await http.request(method, url, json=json, headers=await self.admin.token("root@example.com"))
        assert response.status_code in (200, 201, 204), response.text
        return response


async def until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Wait until `check()` holds, failing after WITHIN seconds."""
    try:
        async with asyncio.timeout(WITHIN):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"{what} did not happen within {WITHIN} s")


@asynccontextmanager
async def live_gateway(
    settings: Settings, tmp_path: Path, fake: FakeUpstream, file_key: str, poll: float = POLL
) -> AsyncIterator[Live]:
    """The gateway serving netra.yaml with `file_key` for the fake, and an admin app beside it."""
    config = tmp_path / "netra.yaml"
    config.write_text(CONFIG.format(url=fake.url, key=file_key), encoding="utf-8")
    settings = settings.model_copy(update={
        "config": config, "policy_poll_interval": poll, "ledger_enabled": False, "graceful_shutdown_timeout": 5.0,
        "breaker_failures": 1000,  # refused connections must not open the breaker and hide the change that follows
    })
    keys, _ = await make_tenants(settings)
    engine = create_engine(settings)
    try:
        async with running_admin(settings, create_sessionmaker(engine)) as admin, serve(settings, {}) as url:
            await admin.add_user("root@example.com", "admin")
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                yield Live(http, admin, fake, settings, keys["acme"])
    finally:
        await engine.dispose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(api_key=RIGHT) as upstream:
        yield upstream


@pytest.fixture
async def other() -> AsyncIterator[FakeUpstream]:
    """A second provider endpoint, for base URL changes."""
    async with FakeUpstream(api_key=RIGHT) as upstream:
        yield upstream


async def test_a_rotated_key_is_used_without_a_restart(settings: Settings, tmp_path: Path, fake: FakeUpstream) -> None:
    async with live_gateway(settings, tmp_path, fake, WRONG) as live:
        refused = await live.chat()
        assert refused.status_code == 502 and refused.json()["error"]["code"] == "upstream_auth_error"
        await live.as_admin("PUT", "/api/providers/fake/api_key", {"api_key": RIGHT})

        async def served() -> bool:
            return (await live.chat()).status_code == 200

        await until("a call served with the rotated key", served)
        assert bearer(fake) == f"Bearer {RIGHT}"
        assert (await live.chat()).status_code == 200  # and it stays in force


async def test_a_new_base_url_takes_new_requests_while_calls_in_flight_finish(
    settings: Settings, tmp_path: Path, fake: FakeUpstream, other: FakeUpstream
) -> None:
    async with live_gateway(settings, tmp_path, fake, RIGHT) as live:
        in_flight = asyncio.create_task(live.chat("slow"))
        await until("the slow call reaching the first endpoint", lambda: _true(fake.calls("gpt-4o-mini-slow-1500")))
        body = {"base_url": f"{other.url}/v1"}
        refused = await (await live.admin.client()).put(
            "/api/providers/fake/base_url", json=body, headers=await live.admin.token("root@example.com"))
        assert refused.status_code == 400  # 127.0.0.1 is loopback: it needs the allowlist
        await live.as_admin("POST", "/api/provider-allowlist", {"host": "127.0.0.1"})
        await live.as_admin("PUT", "/api/providers/fake/base_url", body)

        async def moved() -> bool:
            return (await live.chat()).status_code == 200 and bool(other.requests)

        await until("a call served by the new base URL", moved)
        before = len(fake.requests)
        assert (await live.chat()).status_code == 200 and len(fake.requests) == before
        finished = await in_flight
        assert finished.status_code == 200 and other.calls("gpt-4o-mini-slow-1500") == 0


def bearer(fake: FakeUpstream) -> str:
    """The credential on the last request the fake received."""
    return {k.lower(): v for k, v in fake.requests[-1].headers.items()}["authorization"]


async def _true(value: int) -> bool:
    return value > 0


async def test_an_override_that_does_not_open_is_logged_once_and_the_file_key_serves(
    settings: Settings, tmp_path: Path, fake: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = "sk-sealed-elsewhere-key-5555"
    async with live_gateway(settings, tmp_path, fake, RIGHT) as live:
        with caplog.at_level(logging.ERROR, logger="netra.gateway.credentials"):
            async with live.admin.sessions() as session:  # sealed under another NETRA_SECRET_KEY
                sealed = seal(credential_key(b"another-deployment-secret" * 2), "fake", foreign)
                await change_override(session, "fake", {"api_key_sealed": sealed, "api_key_last4": last_four(foreign)},
                                      action="provider.api_key.set", actor="elsewhere", address=None)

            async def reported() -> bool:
                return any(r.name == "netra.gateway.credentials" for r in caplog.records)

            await until("the unreadable override reported", reported)
            assert (await live.chat()).status_code == 200  # the file's key, still right, still serves
            assert bearer(fake) == f"Bearer {RIGHT}"
            await live.as_admin("POST", "/api/provider-allowlist", {"host": "unrelated.example"})  # another change
            await asyncio.sleep(POLL * 5)  # several polls and one reload: still one report
        reports = [r for r in caplog.records if r.name == "netra.gateway.credentials"]
        assert len(reports) == 1 and getattr(reports[0], "provider", None) == "fake"
        assert foreign not in caplog.text and foreign[:-4] not in caplog.text


async def test_a_name_that_rebinds_to_loopback_is_refused_at_connect_time(
    settings: Settings, tmp_path: Path, fake: FakeUpstream, other: FakeUpstream
) -> None:
    async with live_gateway(settings, tmp_path, fake, RIGHT) as live:
        # As if `localhost` had resolved to a public address when the admin set it: the row is written directly.
        async with live.admin.sessions() as session:
            await change_override(session, "fake", {"base_url": f"http://localhost:{other.port}/v1"},
                                  action="provider.base_url.set", actor="test", address=None)

        async def refused() -> bool:
            response = await live.chat()
            return response.status_code == 503 and response.json()["error"]["code"] == "upstream_unavailable"

        await until("calls to the rebound name refused", refused)
        assert other.requests == []
        await live.as_admin("POST", "/api/provider-allowlist", {"host": "localhost"})

        async def served() -> bool:
            return (await live.chat()).status_code == 200 and bool(other.requests)

        await until("calls through once an admin allowlisted the name", served)


@pytest.mark.postgres
@pytest.mark.redis
async def test_on_postgres_a_redis_notice_brings_the_key_without_waiting_for_the_poll(
    pg_settings: Settings, redis_client: Redis, tmp_path: Path, fake: FakeUpstream
) -> None:
    settings = pg_settings.model_copy(update={"redis_url": REDIS_URL})
    # A poll far beyond the deadline: only the admin app's notice can bring the change in time.
    async with live_gateway(settings, tmp_path, fake, WRONG, poll=600) as live:
        assert (await live.chat()).status_code == 502
        await live.as_admin("PUT", "/api/providers/fake/api_key", {"api_key": RIGHT})

        async def served() -> bool:
            return (await live.chat()).status_code == 200

        await until("a call served with the rotated key", served)
        assert bearer(fake) == f"Bearer {RIGHT}"
