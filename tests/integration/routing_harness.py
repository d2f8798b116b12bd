"""A gateway whose netra.yaml has deployments and fallbacks, with route policies active (routing and resilience)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai

from core.settings import Settings
from tests.fake_upstream import FakeUpstream
from tests.integration.harness import Gateway, make_tenants, serve
from tests.integration.test_cache_gateway import activate_policies

# Upstream names are distinct per deployment so the fake counts each (`fake.calls(name)`). Prices are per million.
ROUTING_CONFIG = """
providers:
  - {{name: fake, kind: openai, base_url: "{fake}/v1", api_key: "sk-fake-upstream-key"}}
  - {{name: fake2, kind: openai, base_url: "{fake}/v1", api_key: "sk-fake-upstream-key"}}
  - {{name: fakeant, kind: anthropic, base_url: "{fake}", api_key: "sk-ant-fake-key"}}
models:
  - {{name: gpt-4o, provider: fake}}
  - {{name: gpt-4o-mini, provider: fake, fallbacks: [gpt-4o]}}
  - {{name: claude-sonnet, provider: fakeant, upstream: claude-sonnet-4-5}}
  - {{name: primary, provider: fake, upstream: primary-x, fallbacks: [backup], price: {{input: 2, output: 8}}}}
  - {{name: backup, provider: fake, upstream: backup-x, price: {{input: 1, output: 4}}}}
  - {{name: to-claude, provider: fake, upstream: to-claude-x, fallbacks: [claude-sonnet],
      price: {{input: 1, output: 1}}}}
  - {{name: solo, provider: fake, upstream: solo-x, price: {{input: 1, output: 1}}}}
  - {{name: pool, provider: fake, upstream: pool-a-slow-200, price: {{input: 1, output: 1}}}}
  - {{name: pool, provider: fake2, upstream: pool-b-slow-200, price: {{input: 1, output: 1}}}}
"""


def routing_settings(settings: Settings, tmp_path: Path, fake: FakeUpstream, **overrides: Any) -> Settings:
    """Settings pointing at the routing config; small delays so retries are quick."""
    config = tmp_path / "netra.yaml"
    config.write_text(ROUTING_CONFIG.format(fake=fake.url), encoding="utf-8")
    return settings.model_copy(update={
        "config": config, "retry_base_delay": 0.01, "upstream_first_byte_timeout": 5.0,
        "graceful_shutdown_timeout": 5.0, **overrides,
    })


@dataclass
class RoutedGateway(Gateway):
    """A running gateway and the official SDK pointed at it (retries off: the gateway's own are under test)."""

    client: openai.AsyncOpenAI = field(default=None)  # type: ignore[assignment]


@asynccontextmanager
async def routed_gateway(
    settings: Settings, fake: FakeUpstream, policies: str | None = None, ids: list[str] | None = None,
) -> AsyncIterator[RoutedGateway]:
    """A running gateway with `policies` (YAML) active from the start; their ids are appended to `ids`."""
    keys, tenants = await make_tenants(settings)
    if policies is not None:
        (ids if ids is not None else []).extend(await activate_policies(settings, policies))
    async with serve(settings, {}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=keys["acme"], max_retries=0)
            try:
                yield RoutedGateway(http, fake, keys, tenants, client)
            finally:
                await client.close()
