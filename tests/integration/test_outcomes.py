"""Outcomes recorded as they happened: a client that leaves, the model a client asked for, no provider at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from aiohttp import web

from core.settings import Settings
from tests.fake_upstream import FakeUpstream
from tests.integration.harness import MESSAGES, gateway_settings, make_tenants, serve, wait_for
from tests.integration.test_ledger_outcomes import read_rows
from tests.unit.helpers import assert_envelope

SLOW_PROVIDER_MS = 3000  # the harness's `slow` model answers after 3 s


class WatchedUpstream(FakeUpstream):
    """The fake provider, also counting calls whose handler was cancelled (its client, the gateway, hung up)."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled_calls = 0
        self.finished_calls = 0

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.append(self._count)
        return app

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            self.cancelled_calls += 1
            raise
        self.finished_calls += 1
        return response


@pytest.fixture
async def fake_upstream() -> AsyncIterator[WatchedUpstream]:
    async with WatchedUpstream() as fake:
        yield fake


@dataclass
class Running:
    url: str
    key: str
    fake: WatchedUpstream


@asynccontextmanager
async def gateway_for(settings: Settings, fake: WatchedUpstream) -> AsyncIterator[Running]:
    """A gateway that waits for the slow provider (no first-byte timeout in the way); rows are read after it."""
    keys, _ = await make_tenants(settings)
    async with serve(settings, {"FAKE_OPENAI_KEY": fake.api_key}) as url:
        yield Running(url, keys["acme"], fake)


@pytest.fixture
def patient(settings: Settings, tmp_path: Path, fake_upstream: WatchedUpstream) -> Settings:
    return gateway_settings(settings, tmp_path, fake_upstream, upstream_first_byte_timeout=30.0)


async def open_call(
    url: str, key: str, rid: str, body: dict[str, Any], *, send_bytes: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A chat call on a raw connection (so the test decides exactly when the client leaves)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    raw = orjson.dumps(body)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: {parts.netloc}\r\nauthorization: Bearer {key}\r\n"
            f"x-request-id: {rid}\r\ncontent-type: application/json\r\ncontent-length: {len(raw)}\r\n\r\n")
    writer.write(head.encode() + raw[:send_bytes])
    await writer.drain()
    return reader, writer


async def leave(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def counted(http: httpx.AsyncClient, status: str) -> bool:
    """Whether the gateway has accounted for a call that ended with this status (waiting a little for it)."""
    for _ in range(100):
        if f'status="{status}"' in (await http.get("/metrics")).text:
            return True
        await asyncio.sleep(0.02)
    return False


def assert_cancelled_early(row: dict[str, Any], model: str) -> None:
    assert (row["status"], row["http_status"], row["requested_model"]) == ("client_cancelled", 499, model)
    # Recorded when the client left, not when the provider would have finished.
    assert row["latency_ms"] < SLOW_PROVIDER_MS / 2


# --- item 4: a client that leaves cancels the provider call at once -------------------------------------------------


async def test_leaving_a_slow_call_cancels_it_upstream(patient: Settings, fake_upstream: WatchedUpstream) -> None:
    async with gateway_for(patient, fake_upstream) as gw:
        _, writer = await open_call(gw.url, gw.key, "left-waiting", {"model": "slow", "messages": MESSAGES})
        assert await wait_for(lambda: len(gw.fake.requests) == 1)  # the gateway is waiting for the provider
        await leave(writer)
        assert await wait_for(lambda: gw.fake.cancelled_calls == 1, seconds=SLOW_PROVIDER_MS / 1000 + 2)
        assert gw.fake.finished_calls == 0
    assert_cancelled_early(read_rows(patient)["left-waiting"], "slow")


async def test_leaving_a_stream_before_its_first_byte_cancels_it_upstream(
    patient: Settings, fake_upstream: WatchedUpstream
) -> None:
    async with gateway_for(patient, fake_upstream) as gw:
        body = {"model": "slow", "messages": MESSAGES, "stream": True}
        _, writer = await open_call(gw.url, gw.key, "left-before-first-byte", body)
        assert await wait_for(lambda: len(gw.fake.requests) == 1)
        await leave(writer)
        assert await wait_for(lambda: gw.fake.cancelled_streams == 1, seconds=SLOW_PROVIDER_MS / 1000 + 2)
        assert gw.fake.completed_streams == 0
    row = read_rows(patient)["left-before-first-byte"]
    assert_cancelled_early(row, "slow")
    assert row["stream"] and row["first_byte_at"] is None


async def test_leaving_mid_stream_cancels_it_upstream(patient: Settings, fake_upstream: WatchedUpstream) -> None:
    async with gateway_for(patient, fake_upstream) as gw:
        body = {"model": "drip", "messages": MESSAGES, "stream": True}
        reader, writer = await open_call(gw.url, gw.key, "left-mid-stream", body)
        received = b""
        while b"data: " not in received:
            received += await reader.read(4096)
        await leave(writer)
        assert await wait_for(lambda: gw.fake.cancelled_streams == 1)
        assert gw.fake.completed_streams == 0
    row = read_rows(patient)["left-mid-stream"]
    assert_cancelled_early(row, "drip")  # the drip takes 2 s in all
    assert row["first_byte_at"] is not None and row["tokens_estimated"]


async def test_leaving_while_sending_the_body_is_recorded(patient: Settings, fake_upstream: WatchedUpstream) -> None:
    async with gateway_for(patient, fake_upstream) as gw:
        _, writer = await open_call(gw.url, gw.key, "left-in-body", {"model": "slow", "messages": MESSAGES},
                                    send_bytes=10)
        await leave(writer)
        async with httpx.AsyncClient(base_url=gw.url) as http:
            assert await counted(http, status="499")
    row = read_rows(patient)["left-in-body"]
    assert (row["status"], row["http_status"]) == ("client_cancelled", 499)
    assert fake_upstream.requests == []


# --- item 5: every row names the model the client asked for --------------------------------------------------------

# OpenAI's types allow a custom tool call; the Messages API has nothing to translate it to.
CUSTOM_TOOL_TURN = {"role": "assistant", "content": None,
                    "tool_calls": [{"id": "c1", "type": "custom", "custom": {"name": "x", "input": "y"}}]}


async def test_refused_calls_record_the_model_the_client_sent(
    patient: Settings, fake_upstream: WatchedUpstream
) -> None:
    async with gateway_for(patient, fake_upstream) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        auth = {"authorization": f"Bearer {gw.key}"}
        calls = {
            "unknown-model": ({"model": "nope-model", "messages": MESSAGES}, 404),
            "wrong-type": ({"model": "gpt-4o-mini", "messages": "not a list"}, 400),
            "untranslatable": ({"model": "claude", "messages": [*MESSAGES, CUSTOM_TOOL_TURN]}, 400),
        }
        for rid, (body, status) in calls.items():
            reply = await http.post("/v1/chat/completions", json=body, headers={**auth, "x-request-id": rid})
            assert reply.status_code == status, reply.text
        metrics = (await http.get("/metrics")).text
    rows = read_rows(patient)
    assert rows["unknown-model"]["requested_model"] == "nope-model"
    assert rows["unknown-model"]["error_code"] == "model_not_found"
    assert rows["wrong-type"]["requested_model"] == "gpt-4o-mini"
    assert rows["wrong-type"]["error_code"] == "invalid_type"
    # Refused while translating for Anthropic: nothing went upstream, so no attempt is on the row.
    assert (rows["untranslatable"]["requested_model"], rows["untranslatable"]["upstream_attempts"]) == ("claude", 0)
    assert "nope-model" not in metrics  # a name any client can make up is no metrics label


# --- item 14: no provider configured ---------------------------------------------------------------------------------


async def test_a_call_with_no_provider_configured_says_how_to_add_one(
    settings: Settings, tmp_path: Path, fake_upstream: WatchedUpstream
) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("providers: []\nmodels: []\n", encoding="utf-8")
    settings = settings.model_copy(update={"config": config})
    async with gateway_for(settings, fake_upstream) as gw, httpx.AsyncClient(base_url=gw.url) as http:
        reply = await http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES},
                                headers={"authorization": f"Bearer {gw.key}"})
    assert reply.status_code == 404
    error = assert_envelope(reply.json(), type="invalid_request_error", code="model_not_found", param="model")
    message = error["message"]
    assert "no provider is configured" in message
    assert all(hint in message for hint in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "netra.yaml", "README"))
