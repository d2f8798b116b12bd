"""The Anthropic adapter against the fake provider: chat completions in, Messages API out, and back."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from core.config import ModelConfig, ProviderConfig
from core.errors import InvalidParameter, ServiceUnavailable, UpstreamFailed, UpstreamRejected, UpstreamTimeout
from gateway.providers.anthropic import ANTHROPIC_VERSION, AnthropicProvider, AnthropicStream
from gateway.providers.base import UpstreamCall
from gateway.providers.http import Timeouts
from tests.fake_upstream import FakeUpstream
from tests.fake_upstream_behaviour import DEFAULT_REPLY, TOOL_ARGUMENTS, tokens_for
from tests.unit.helpers import assert_envelope, closed_port

KEY = "sk-ant-fake-key"
PROMPT = "Hello there!"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}]
INPUT_TOKENS = tokens_for(len(PROMPT) + len("Be brief."))
OUTPUT_TOKENS = tokens_for(len(DEFAULT_REPLY))
CACHE_READ, CACHE_WRITE = 100, 20  # what the fake reports for a `cached` model
TIMEOUTS = Timeouts(connect=5, first_byte=5, idle=5, total=30)
DONE = b"data: [DONE]"


def anthropic(base_url: str, session: aiohttp.ClientSession, timeouts: Timeouts = TIMEOUTS, key: str = KEY
              ) -> AnthropicProvider:
    config = ProviderConfig(name="ant", kind="anthropic", base_url=base_url, api_key=key)
    return AnthropicProvider(config, session, timeouts)


def call(upstream: str, *, name: str = "claude", **fields: Any) -> UpstreamCall:
    body: dict[str, Any] = {"model": name, "messages": MESSAGES, **fields}
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    model = ModelConfig(name=name, provider="ant", upstream=upstream)
    return UpstreamCall("chat/completions", body, model, body.get("stream") is True, "req_test", include_usage)


async def drain(stream: AnthropicStream) -> list[bytes]:
    try:
        data = b"".join([chunk async for chunk in stream.events()])
    finally:
        await stream.aclose()
    return [event for event in data.split(b"\n\n") if event]


def payloads(events: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(event.removeprefix(b"data: ")) for event in events if event != DONE]


@pytest.fixture
def provider(fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession) -> AnthropicProvider:
    return anthropic(fake_upstream.url, http_session)


# --- JSON -------------------------------------------------------------------------------------------------------------


async def test_request_goes_to_messages_with_anthropic_headers(
    provider: AnthropicProvider, fake_upstream: FakeUpstream
) -> None:
    await provider.send(call("claude-sonnet-4-5", temperature=0.2, max_tokens=100))
    (received,) = fake_upstream.requests
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == KEY
    assert received.headers["anthropic-version"] == ANTHROPIC_VERSION
    assert "authorization" not in received.headers
    assert received.json == {
        "model": "claude-sonnet-4-5", "system": "Be brief.", "max_tokens": 100, "temperature": 0.2, "stream": False,
        "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
    }


@pytest.mark.parametrize("stream", [False, True])
async def test_a_malformed_turn_is_refused_before_the_provider_is_called(
    provider: AnthropicProvider, fake_upstream: FakeUpstream, stream: bool
) -> None:
    broken = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": 5}]
    with pytest.raises(InvalidParameter) as caught:
        if stream:
            await provider.open_stream(call("claude-sonnet-4-5", messages=broken, stream=True))
        else:
            await provider.send(call("claude-sonnet-4-5", messages=broken))
    assert caught.value.status_code == 400
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code="invalid_type",
                    param="messages[2].tool_calls")
    assert fake_upstream.requests == []


async def test_json_reply_is_a_chat_completion(provider: AnthropicProvider) -> None:
    reply = await provider.send(call("claude-sonnet-4-5", name="claude"))
    completion = orjson.loads(reply.body)
    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl-msg_fake")
    assert completion["model"] == "claude"
    (choice,) = completion["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == DEFAULT_REPLY
    assert choice["finish_reason"] == "stop"
    assert completion["usage"]["prompt_tokens"] == INPUT_TOKENS
    assert completion["usage"]["completion_tokens"] == OUTPUT_TOKENS
    assert completion["usage"]["total_tokens"] == INPUT_TOKENS + OUTPUT_TOKENS
    assert reply.usage is not None and reply.usage.prompt_tokens == INPUT_TOKENS


async def test_cached_prompt_tokens_count_into_the_prompt(provider: AnthropicProvider) -> None:
    reply = await provider.send(call("claude-sonnet-4-5-cached"))
    usage = orjson.loads(reply.body)["usage"]
    assert usage["prompt_tokens"] == INPUT_TOKENS + CACHE_READ + CACHE_WRITE
    assert usage["prompt_tokens_details"]["cached_tokens"] == CACHE_READ
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.cached_tokens, reply.usage.cache_write_tokens) == (
        INPUT_TOKENS + CACHE_READ + CACHE_WRITE, CACHE_READ, CACHE_WRITE
    )


async def test_tool_call_translates(provider: AnthropicProvider) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    reply = await provider.send(call("claude-sonnet-4-5-tools", tools=tools))
    (choice,) = orjson.loads(reply.body)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (tool_call,) = choice["message"]["tool_calls"]
    assert tool_call["function"] == {"name": "get_weather", "arguments": TOOL_ARGUMENTS}


# --- streaming --------------------------------------------------------------------------------------------------------


async def test_stream_translates_to_chat_chunks(provider: AnthropicProvider, fake_upstream: FakeUpstream) -> None:
    stream = await provider.open_stream(call("claude-sonnet-4-5", stream=True))
    events = await drain(stream)
    assert fake_upstream.requests[0].json["stream"] is True
    assert events[-1] == DONE
    chunks = payloads(events)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == DEFAULT_REPLY
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(b'"usage"' not in event for event in events)
    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (INPUT_TOKENS, OUTPUT_TOKENS)
    assert stream.completion_chars == len(DEFAULT_REPLY)
    assert stream.error_code == ""


async def test_stream_usage_chunk_when_asked_with_cache_tokens(provider: AnthropicProvider) -> None:
    stream = await provider.open_stream(
        call("claude-sonnet-4-5-cached", stream=True, stream_options={"include_usage": True})
    )
    events = await drain(stream)
    chunks = payloads(events)
    assert all(c["usage"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == INPUT_TOKENS + CACHE_READ + CACHE_WRITE
    assert last["usage"]["completion_tokens"] == OUTPUT_TOKENS
    assert last["usage"]["prompt_tokens_details"]["cached_tokens"] == CACHE_READ
    assert stream.usage is not None and stream.usage.cache_write_tokens == CACHE_WRITE


async def test_midstream_failure_ends_with_an_in_band_error_and_done(provider: AnthropicProvider) -> None:
    stream = await provider.open_stream(call("claude-sonnet-4-5-midstream-fail", stream=True))
    events = await drain(stream)
    assert events[-1] == DONE
    assert_envelope(orjson.loads(events[-2].removeprefix(b"data: ")), type="server_error", code="upstream_error")
    assert len(events) > 2
    assert stream.error_code == "upstream_error"


async def test_idle_timeout_is_an_in_band_upstream_timeout(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    provider = anthropic(fake_upstream.url, http_session, Timeouts(connect=5, first_byte=5, idle=0.05, total=30))
    stream = await provider.open_stream(call("claude-drip-200", stream=True))
    events = await drain(stream)
    assert events[-1] == DONE
    assert_envelope(orjson.loads(events[-2].removeprefix(b"data: ")), type="server_error", code="upstream_timeout")
    assert stream.error_code == "upstream_timeout"


async def test_closing_a_stream_early_cancels_the_upstream_generation(
    provider: AnthropicProvider, fake_upstream: FakeUpstream
) -> None:
    stream = await provider.open_stream(call("claude-drip-100", stream=True))
    events = stream.events()
    await anext(events)
    await events.aclose()
    await stream.aclose()
    for _ in range(150):
        if fake_upstream.cancelled_streams:
            break
        await asyncio.sleep(0.02)
    assert fake_upstream.cancelled_streams == 1


# --- errors -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_provider_400_passes_through(provider: AnthropicProvider, stream: bool) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        if stream:
            await provider.open_stream(call("claude-error-400", stream=True))
        else:
            await provider.send(call("claude-error-400"))
    assert caught.value.status_code == 400
    detail = assert_envelope(caught.value.envelope(), type="invalid_request_error", code=None)
    assert detail["message"] == "messages: Input should be a valid list"


@pytest.mark.parametrize("model", ["claude-error-401", "claude-error-403"])
async def test_provider_auth_failure_is_upstream_auth_error(provider: AnthropicProvider, model: str) -> None:
    with pytest.raises(UpstreamFailed) as caught:
        await provider.send(call(model))
    assert caught.value.status_code == 502
    assert_envelope(caught.value.envelope(), type="server_error", code="upstream_auth_error")


async def test_wrong_provider_key_is_upstream_auth_error(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    provider = anthropic(fake_upstream.url, http_session, key="sk-ant-wrong-0000000")
    with pytest.raises(UpstreamFailed) as caught:
        await provider.send(call("claude-sonnet-4-5"))
    assert caught.value.code == "upstream_auth_error"


@pytest.mark.parametrize("model", ["claude-error-429", "claude-overloaded", "claude-error-529"])
async def test_rate_limited_or_overloaded_provider_is_503_with_retry_after(
    provider: AnthropicProvider, model: str
) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        await provider.send(call(model))
    assert caught.value.status_code == 503
    assert_envelope(caught.value.envelope(), type="server_error", code="upstream_overloaded")
    # The fake's Anthropic 429 says retry-after: 1; its 529s, like Anthropic's, say nothing, and none is invented
    # here (the gateway's 503 to the client always carries one: test_resilience.py).
    assert caught.value.provider_retry_after == (1.0 if model == "claude-error-429" else None)


@pytest.mark.parametrize("model", ["claude-error-500", "claude-garbage"])
async def test_provider_failure_is_upstream_error(provider: AnthropicProvider, model: str) -> None:
    with pytest.raises(UpstreamFailed) as caught:
        await provider.send(call(model))
    assert caught.value.status_code == 502
    assert_envelope(caught.value.envelope(), type="server_error", code="upstream_error")


async def test_first_byte_timeout_raises(fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession) -> None:
    provider = anthropic(fake_upstream.url, http_session, Timeouts(connect=5, first_byte=0.1, idle=5, total=30))
    with pytest.raises(UpstreamTimeout):
        await provider.send(call("claude-slow-500"))


async def test_unreachable_provider_is_unavailable(http_session: aiohttp.ClientSession) -> None:
    provider = anthropic(f"http://127.0.0.1:{closed_port()}", http_session)
    with pytest.raises(ServiceUnavailable) as caught:
        await provider.open_stream(call("claude-sonnet-4-5", stream=True))
    assert caught.value.code == "upstream_unavailable"


def test_only_chat_completions_are_served(provider: AnthropicProvider) -> None:
    assert provider.supports("chat/completions")
    assert not any(provider.supports(e) for e in ("completions", "embeddings", "responses"))
