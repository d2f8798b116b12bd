"""A gateway on PostgreSQL with OpenAI and Azure providers on the fake, for the Files and Batches tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import orjson

from core.settings import Settings
from tests.fake_upstream import FakeUpstream
from tests.integration.harness import make_tenants, serve

CONFIG = """
providers:
  - {{name: fake, kind: openai, base_url: "{fake}/v1", api_key: "${{FAKE_OPENAI_KEY}}"}}
  - {{name: fakeazure, kind: azure, base_url: "{fake}", api_key: "${{FAKE_OPENAI_KEY}}"}}
  - {{name: fakeant, kind: anthropic, base_url: "{fake}", api_key: "sk-ant-fake-key"}}
models:
  - {{name: gpt-4o-mini, provider: fake}}
  - {{name: mini, provider: fake, upstream: gpt-4o-mini-2024-07-18}}
  - {{name: gpt-4o, provider: fake}}
  - {{name: rejected, provider: fake, upstream: gpt-4o-mini-error-400}}
  - {{name: text-embedding-3-small, provider: fake}}
  - {{name: azure-4o, provider: fakeazure, upstream: gpt-4o-deployment, price: {{input: 2.5, output: 10}}}}
  - {{name: claude, provider: fakeant, upstream: claude-sonnet-4-5}}
"""
MAX_FILE_BYTES = 256 * 1024


@dataclass
class BatchNetra:
    """A running gateway: its URL, a key per tenant, its settings and the fake behind it."""

    url: str
    keys: dict[str, str]
    tenant_ids: dict[str, str]
    settings: Settings
    fake: FakeUpstream
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    def sdk(self, who: str = "acme", **headers: str) -> openai.AsyncOpenAI:
        """The official SDK as a tenant's application uses it, pointed at Netra (closed with the gateway)."""
        client = openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=self.keys[who], max_retries=0, default_headers=headers or None
        )
        self.clients.append(client)
        return client


def batch_settings(settings: Settings, pg_url: str, tmp_path: Path, fake: FakeUpstream, **changes: Any) -> Settings:
    """Settings with this module's netra.yaml, the store on PostgreSQL and the ledger in the test's chDB database."""
    config = tmp_path / "netra.yaml"
    config.write_text(CONFIG.format(fake=fake.url), encoding="utf-8")
    return settings.model_copy(update={
        "config": config, "database_url": pg_url, "max_file_bytes": MAX_FILE_BYTES, "graceful_shutdown_timeout": 5.0,
        "ledger_flush_interval": 0.05, **changes,
    })


@asynccontextmanager
async def running(settings: Settings, fake: FakeUpstream) -> AsyncIterator[BatchNetra]:
    """The gateway until the block ends (then the ledger is flushed)."""
    keys, ids = await make_tenants(settings)
    async with serve(settings, {"FAKE_OPENAI_KEY": fake.api_key}) as url:
        netra = BatchNetra(url, keys, ids, settings, fake)
        try:
            yield netra
        finally:
            for client in netra.clients:
                await client.close()


def chat_line(custom_id: str, model: str, text: str, url: str = "/v1/chat/completions") -> dict[str, Any]:
    """One batch input line asking the fake to echo `text`."""
    body = {"model": model, "messages": [{"role": "user", "content": f"echo: {text}"}]}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    """Lines as a JSONL file."""
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def questions(n: int, model: str = "gpt-4o-mini", prefix: str = "q") -> bytes:
    """A batch input file of `n` echo questions to `model`, custom ids `{prefix}-0`…"""
    return jsonl([chat_line(f"{prefix}-{i}", model, f"answer {prefix} {i}") for i in range(n)])


async def upload(client: openai.AsyncOpenAI, content: bytes, name: str = "input.jsonl") -> str:
    """Upload a batch input file through Netra; its id."""
    created = await client.files.create(file=(name, content, "application/jsonl"), purpose="batch")
    return created.id


async def run_batch(client: openai.AsyncOpenAI, fake: FakeUpstream, content: bytes) -> Any:
    """Upload, create, let the fake finish, and retrieve: the completed batch."""
    batch = await client.batches.create(
        input_file_id=await upload(client, content), endpoint="/v1/chat/completions", completion_window="24h"
    )
    fake.complete_batches()
    return await client.batches.retrieve(batch.id)
