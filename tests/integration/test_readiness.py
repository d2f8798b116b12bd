"""GET /health/ready: degraded but ready when Redis is away, not ready without providers, prompt during inserts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from core.settings import Settings
from gateway.ledger import RowSink
from tests.fake_upstream import FakeUpstream
from tests.integration.conftest import REDIS_URL
from tests.integration.harness import gateway_settings, make_tenants, running_gateway, serve, wait_for
from tests.integration.redis_door import RedisDoor

T = TypeVar("T")
NO_PROVIDERS = "none configured: set OPENAI_API_KEY or ANTHROPIC_API_KEY, or write netra.yaml"


async def test_a_hung_redis_degrades_readiness_without_failing_it(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    async with RedisDoor(REDIS_URL, mode="hung") as door:  # accepts, never answers: no Redis needed
        configured = gateway_settings(settings, tmp_path, fake_upstream, redis_url=door.url)
        async with running_gateway(configured, fake_upstream) as gateway:
            before = await gateway.http.get("/health/ready")  # nothing noticed yet: the probe pings
            assert before.status_code == 200
            assert before.json()["checks"]["redis"] == "degraded: redis unreachable (TimeoutError)"
            for _ in range(6):
                served = await gateway.chat(who="tiny")
                assert served.status_code == 200
            assert served.headers["x-ratelimit-remaining-requests"] == "94"
            ready = await gateway.http.get("/health/ready")
            assert ready.status_code == 200
            body = ready.json()
            assert body["status"] == "degraded"
            assert body["checks"]["redis"].startswith("degraded: redis unreachable (TimeoutError)")
            assert {n: v for n, v in body["checks"].items() if n != "redis"} == {
                "database": "ok", "clickhouse": "ok", "ledger": "ok", "providers": "ok",
            }
            # The ping of the first probe and the limiter's first call; the second probe knew without waiting. The
            # policy holder's background subscription adds one or two attempts (it backs off); a wait per request
            # would have made at least eight.
            assert 2 <= door.hung_connections <= 4


async def test_no_provider_configured_is_not_ready_and_says_how_to_add_one(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./netra.yaml to find
    bare = settings.model_copy(update={"config": None, "openai_api_key": None, "anthropic_api_key": None})
    await make_tenants(bare)
    async with serve(bare, {}) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        ready = await http.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "ok", "clickhouse": "ok", "ledger": "ok", "providers": NO_PROVIDERS},
    }


class HeldSink:
    """The real store, except that an insert waits in the store's thread until the test lets it go."""

    def __init__(self, store: RowSink) -> None:
        self.store = store
        self.inserting = threading.Event()
        self.release = threading.Event()

    def insert_rows(self, rows: Sequence[bytes], token: str) -> None:
        self.inserting.set()
        self.release.wait(30)  # a long insert; the bound only keeps a broken test from hanging
        self.store.insert_rows(rows, token)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.store.run(fn, *args)


async def test_readiness_answers_while_a_long_insert_runs(
    settings: Settings, tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    configured = gateway_settings(settings, tmp_path, fake_upstream, ledger_batch_rows=1, ledger_flush_interval=0.05)
    sinks: list[HeldSink] = []

    def hold(store: RowSink) -> RowSink:
        sinks.append(HeldSink(store))
        return sinks[-1]

    keys, _ = await make_tenants(configured)
    async with serve(configured, {"FAKE_OPENAI_KEY": fake_upstream.api_key}, wrap_sink=hold) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            try:
                chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
                headers = {"authorization": f"Bearer {keys['acme']}"}
                assert (await http.post("/v1/chat/completions", json=chat, headers=headers)).status_code == 200
                assert await wait_for(sinks[0].inserting.is_set, 10)
                ready = await http.get("/health/ready")  # its probes give up after 2 s: the insert holds longer
            finally:
                sinks[0].release.set()
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["clickhouse"] == "ok"
