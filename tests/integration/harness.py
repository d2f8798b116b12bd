"""The gateway in-process under uvicorn on a loopback port, with the fake provider behind it (shared by tests)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from core.clickhouse import ClickHouseStore, open_client
from core.db import create_engine, create_sessionmaker
from core.migrate import upgrade_relational_async
from core.settings import Settings
from core.tenants import list_tenants
from gateway.app import create_app
from gateway.ledger import RowSink
from gateway.server import GatewayServer, server_config
from tests.fake_upstream import FakeUpstream
from tests.unit.helpers import closed_port, tenant_with_key

MESSAGES = [{"role": "user", "content": "Hello there!"}]
CONFIG = """
providers:
  - {{name: fake, kind: openai, base_url: "{fake}/v1", api_key: "${{FAKE_OPENAI_KEY}}"}}
  - {{name: fakeant, kind: anthropic, base_url: "{fake}", api_key: "sk-ant-fake-key"}}
  - {{name: down, kind: openai, base_url: "http://127.0.0.1:{closed}/v1", api_key: "sk-fake-upstream-key"}}
models:
  - {{name: gpt-4o-mini, provider: fake}}
  - {{name: gpt-4o, provider: fake}}
  - {{name: text-embedding-3-small, provider: fake}}
  - {{name: claude, provider: fakeant, upstream: claude-sonnet-4-5}}
  - {{name: broken, provider: fake, upstream: gpt-4o-mini-error-500}}
  - {{name: rejected, provider: fake, upstream: gpt-4o-mini-error-400}}
  - {{name: bad-credential, provider: fake, upstream: gpt-4o-mini-error-401}}
  - {{name: busy, provider: fake, upstream: gpt-4o-mini-error-429}}
  - {{name: slow, provider: fake, upstream: gpt-4o-mini-slow-3000}}
  - {{name: flaky, provider: fake, upstream: gpt-4o-mini-flaky}}
  - {{name: drip, provider: fake, upstream: gpt-4o-mini-drip-100, price: {{input: 0.15, output: 0.6}}}}
  - {{name: midstream, provider: fake, upstream: gpt-4o-mini-midstream-fail}}
  - {{name: cut-short, provider: fake, upstream: gpt-4o-mini-truncated, price: {{input: 0.15, output: 0.6}}}}
  - {{name: unreachable, provider: down, upstream: gpt-4o-mini}}
  - {{name: quiet, provider: fake, upstream: gpt-4o-mini-no-usage, price: {{input: 0.15, output: 0.6}}}}
  - {{name: claude-quiet, provider: fakeant, upstream: claude-sonnet-4-5-no-usage, price: {{input: 3, output: 15}}}}
  - {{name: cached, provider: fake, upstream: gpt-4o-mini-cached,
      price: {{input: 0.15, output: 0.6, cached_input: 0.075}}}}
  - {{name: claude-cached, provider: fakeant, upstream: claude-sonnet-4-5-cached,
      price: {{input: 3, output: 15, cached_input: 0.3, cache_write: 3.75}}}}
"""
MAX_BODY = 64 * 1024
FIRST_BYTE_TIMEOUT = 0.5


@dataclass
class Gateway:
    """A running gateway: its HTTP client, the fake behind it and a key per kind of caller."""

    http: httpx.AsyncClient
    fake: FakeUpstream
    keys: dict[str, str]
    tenant_ids: dict[str, str]

    def auth(self, who: str = "acme") -> dict[str, str]:
        return {"authorization": f"Bearer {self.keys[who]}"}

    async def chat(self, model: str = "gpt-4o-mini", who: str = "acme", **fields: Any) -> httpx.Response:
        body = {"model": model, "messages": MESSAGES, **fields}
        return await self.http.post("/v1/chat/completions", json=body, headers=self.auth(who))

    async def metrics(self) -> dict[str, Any]:
        text = (await self.http.get("/metrics")).text
        return {family.name: family for family in text_string_to_metric_families(text)}


def gateway_settings(settings: Settings, tmp_path: Path, fake: FakeUpstream, **overrides: Any) -> Settings:
    config = tmp_path / "netra.yaml"
    config.write_text(CONFIG.format(fake=fake.url, closed=closed_port()), encoding="utf-8")
    return settings.model_copy(update={
        "config": config, "max_body_bytes": MAX_BODY, "upstream_first_byte_timeout": FIRST_BYTE_TIMEOUT,
        "graceful_shutdown_timeout": 5.0, **overrides,
    })


def stored_rows(settings: Settings) -> list[dict[str, Any]]:
    """Every row of llm_calls, every column, as stored (not FINAL: a duplicate would show)."""
    store = ClickHouseStore(open_client(settings.resolved_clickhouse_url, settings.clickhouse_database), embedded=True)
    try:
        names = [n for n, in store.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'llm_calls' "
            "ORDER BY position")]
        rows = store.query(f"SELECT {', '.join(names)} FROM llm_calls")
    finally:
        store.close()
    return [dict(zip(names, row, strict=True)) for row in rows]


async def make_tenants(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """Migrate the database and create one tenant per kind of caller; returns their keys and tenant ids."""
    await upgrade_relational_async(settings)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        keys = {
            "acme": await tenant_with_key(sessions, "acme", tier="enterprise"),
            "tiny": await tenant_with_key(sessions, "tiny", tier="free"),
            "frozen": await tenant_with_key(sessions, "frozen", suspended=True),
            "limited": await tenant_with_key(sessions, "limited", models=["gpt-4o-mini"]),
        }
        async with sessions() as session:
            ids = {t.name: t.id for t in await list_tenants(session)}
    finally:
        await engine.dispose()
    return keys, ids


@asynccontextmanager
async def serve(
    settings: Settings, env: dict[str, str], wrap_sink: Callable[[RowSink], RowSink] | None = None
) -> AsyncIterator[str]:
    """Run the app under uvicorn on a loopback port, lifespan included; yields its base URL."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say they are TCP.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # Served as the CLI serves it (connection limits, timeouts), on the test's own event loop.
    app = create_app(settings, env, wrap_sink=wrap_sink)
    config = server_config(app, settings, loop="asyncio", log_level="warning")
    server = GatewayServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the gateway stopped during start-up")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def running_gateway(settings: Settings, fake: FakeUpstream) -> AsyncIterator[Gateway]:
    keys, ids = await make_tenants(settings)
    async with serve(settings, {"FAKE_OPENAI_KEY": fake.api_key}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            yield Gateway(http, fake, keys, ids)


async def wait_for(predicate: Any, seconds: float = 3.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


def sample(families: dict[str, Any], family: str, sample_name: str, **labels: str) -> float | None:
    for s in families[family].samples:
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return None


