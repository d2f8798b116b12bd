"""The OpenAI and Azure OpenAI adapters against the fake provider on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from core.config import ModelConfig, ProviderConfig
from core.errors import ServiceUnavailable, UpstreamFailed, UpstreamRejected, UpstreamTimeout
from gateway.providers.base import UpstreamCall
from gateway.providers.http import Timeouts
from gateway.providers.openai import AzureProvider, OpenAIProvider, OpenAIStream
from tests.fake_upstream import WIRES, FakeUpstream
from tests.fake_upstream_behaviour import DEFAULT_REPLY, tokens_for
from tests.unit.helpers import assert_envelope, closed_port

KEY = "sk-fake-upstream-key"
PROMPT = "Hello there!"
MESSAGES = [{"role": "user", "content": PROMPT}]
TIMEOUTS = Timeouts(connect=5, first_byte=5, idle=5, total=30)
DONE = b"data: [DONE]"
# The stream tests run against every layout a provider may write its SSE in (the fake_upstream fixture takes it).
EVERY_WIRE = pytest.mark.parametrize("fake_wire", WIRES)


def openai(fake: FakeUpstream, session: aiohttp.ClientSession, timeouts: Timeouts = TIMEOUTS, **config: Any
           ) -> OpenAIProvider:
    settings = {"name": "fake", "kind": "openai", "base_url": fake.url + "/v1", "api_key": KEY, **config}
    return OpenAIProvider(ProviderConfig(**settings), session, timeouts)


def call(upstream: str, *, endpoint: str = "chat/completions", name: str = "public-model", **fields: Any
         ) -> UpstreamCall:
    """A call the way the handler builds it: the client's body, the resolved model, the usage flag."""
    body: dict[str, Any] = {"model": name, "messages": MESSAGES, **fields}
    if endpoint != "chat/completions":
        del body["messages"]
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    model = ModelConfig(name=name, provider="fake", upstream=upstream)
    return UpstreamCall(endpoint, body, model, body.get("stream") is True, "req_test", include_usage)


def split_events(data: bytes) -> list[bytes]:
    """The events Netra sent (always LF-framed), keep-alive comments left out."""
    return [event for event in data.split(b"\n\n") if event and not event.startswith(b":")]


def data_of(event: bytes) -> bytes:
    """An event's data as a client's SSE parser sees it: every `data:` line, joined with a newline."""
    lines = [line.removeprefix(b"data:") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(line.removeprefix(b" ") for line in lines)


async def drain(stream: OpenAIStream) -> list[bytes]:
    try:
        return split_events(b"".join([chunk async for chunk in stream.events()]))
    finally:
        await stream.aclose()


def payloads(events: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(data_of(event)) for event in events if event != DONE]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def strip_ids(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("id", "created")}


async def wait_for(predicate: Any, seconds: float = 3.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


@pytest.fixture
def provider(fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession) -> OpenAIProvider:
    return openai(fake_upstream, http_session)


# --- JSON -------------------------------------------------------------------------------------------------------------


async def test_json_reply_is_what_the_provider_answered(
    provider: OpenAIProvider, fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    reply = await provider.send(call("gpt-4o-mini"))
    direct_body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    async with http_session.post(
        fake_upstream.url + "/v1/chat/completions", json=direct_body, headers={"authorization": f"Bearer {KEY}"}
    ) as response:
        direct = await response.json()
    ours = orjson.loads(reply.body)
    assert strip_ids(ours) == strip_ids(direct)
    assert ours["model"] == "gpt-4o-mini"
    assert reply.status == 200
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        tokens_for(len(PROMPT)), tokens_for(len(DEFAULT_REPLY))
    )


@asynccontextmanager
async def raw_upstream(path: str, body: bytes, content_type: str) -> AsyncIterator[str]:
    """A provider on loopback answering every POST to `path` with exactly these bytes; yields its /v1 base URL."""

    async def answer(_: web.Request) -> web.Response:
        return web.Response(body=body, headers={"content-type": content_type})

    app = web.Application()
    app.router.add_post(path, answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def test_json_bytes_pass_through_untouched(http_session: aiohttp.ClientSession) -> None:
    raw = (
        b'{ "id" : "chatcmpl-x",\n  "object":"chat.completion", "created": 1, "model":"m",'
        b' "choices":[{"index":0,"message":{"role":"assistant","content":"caf\\u00e9 \xe2\x9c\x93"},'
        b'"finish_reason":"stop"}], "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,'
        b'"prompt_tokens_details":{"cached_tokens":1}}, "x_vendor": 1.50 }'
    )
    async with raw_upstream("/v1/chat/completions", raw, "application/json") as base_url:
        config = ProviderConfig(name="raw", kind="openai", base_url=base_url, api_key=KEY)
        reply = await OpenAIProvider(config, http_session, TIMEOUTS).send(call("m"))
    assert reply.body == raw
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.cached_tokens) == (3, 2, 1)


async def test_stream_with_crlf_line_endings_is_relayed(http_session: aiohttp.ClientSession) -> None:
    # The SSE spec allows CRLF line endings; some OpenAI-compatible servers and proxies use them.
    chunks = [
        {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}}]}
        for piece in ("Hel", "lo")
    ]
    usage = {"id": "c1", "object": "chat.completion.chunk", "choices": [],
             "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}
    raw = b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in [*chunks, usage]) + b"data: [DONE]\r\n\r\n"
    async with raw_upstream("/v1/chat/completions", raw, "text/event-stream") as base_url:
        config = ProviderConfig(name="raw", kind="openai", base_url=base_url, api_key=KEY)
        stream = await OpenAIProvider(config, http_session, TIMEOUTS).open_stream(call("m", stream=True))
        events = await drain(stream)
    assert stream.error_code == ""
    assert text_of(payloads(events)) == "Hello"
    assert events[-1].strip() == DONE
    assert stream.usage is not None and stream.usage.total_tokens == 6


async def test_upstream_gets_the_providers_key_and_configured_headers(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    provider = openai(fake_upstream, http_session, headers={"OpenAI-Organization": "org-netra"})
    await provider.send(call("gpt-4o-mini"))
    (received,) = fake_upstream.requests
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert received.headers["openai-organization"] == "org-netra"
    assert received.path == "/v1/chat/completions"


async def test_model_is_renamed_and_unknown_fields_forwarded(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    extra = {"foo": {"bar": 1}, "temperature": 0.25, "logit_bias": {"50256": -100}, "user": "u-7"}
    await provider.send(call("gpt-4o-mini", name="cheap-alias", **extra))
    (received,) = fake_upstream.requests
    assert received.json == {"model": "gpt-4o-mini", "messages": MESSAGES, **extra}


@pytest.mark.parametrize(("endpoint", "fields"), [("embeddings", {"input": ["a", "b"]}),
                                                  ("completions", {"prompt": "Say hi"})])
async def test_other_endpoints_pass_through(
    provider: OpenAIProvider, fake_upstream: FakeUpstream, endpoint: str, fields: dict[str, Any]
) -> None:
    reply = await provider.send(call("text-embedding-3-small", endpoint=endpoint, **fields))
    assert fake_upstream.requests[-1].path == f"/v1/{endpoint}"
    assert orjson.loads(reply.body)["model"] == "text-embedding-3-small"
    assert reply.usage is not None and reply.usage.prompt_tokens > 0


# --- streaming --------------------------------------------------------------------------------------------------------


@EVERY_WIRE
async def test_stream_asks_for_usage_and_hides_it_from_a_client_that_did_not(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    stream = await provider.open_stream(call("gpt-4o-mini", stream=True))
    events = await drain(stream)
    (received,) = fake_upstream.requests
    assert received.json["stream_options"] == {"include_usage": True}
    assert events[-1] == DONE
    assert all(b'"usage"' not in event for event in events)
    assert text_of(payloads(events)) == DEFAULT_REPLY
    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (
        tokens_for(len(PROMPT)), tokens_for(len(DEFAULT_REPLY))
    )
    assert stream.completion_chars == len(DEFAULT_REPLY)
    assert stream.error_code == ""


@EVERY_WIRE
async def test_stream_keeps_the_clients_other_stream_options(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    stream = await provider.open_stream(call("gpt-4o-mini", stream=True, stream_options={"include_obfuscation": False}))
    events = await drain(stream)
    assert fake_upstream.requests[0].json["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert all(b'"usage"' not in event for event in events)
    assert stream.usage is not None


@EVERY_WIRE
async def test_stream_passes_usage_through_when_the_client_asked(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    stream = await provider.open_stream(call("gpt-4o-mini", stream=True, stream_options={"include_usage": True}))
    events = await drain(stream)
    assert fake_upstream.requests[0].json["stream_options"] == {"include_usage": True}
    chunks = payloads(events)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert [c["choices"] for c in chunks if c["usage"] is not None] == [[]], "the usage chunk, exactly once"
    assert chunks[-1]["usage"]["completion_tokens"] == tokens_for(len(DEFAULT_REPLY))
    assert events[-1] == DONE
    assert stream.usage is not None and stream.usage.completion_tokens == tokens_for(len(DEFAULT_REPLY))


@EVERY_WIRE
async def test_legacy_completions_stream_hides_usage_too(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    stream = await provider.open_stream(call("gpt-3.5-turbo-instruct", endpoint="completions", prompt="x",
                                             stream=True))
    events = await drain(stream)
    assert fake_upstream.requests[0].json["stream_options"] == {"include_usage": True}
    assert all(b'"usage"' not in event for event in events)
    assert "".join(c["choices"][0]["text"] for c in payloads(events)) == DEFAULT_REPLY
    assert stream.usage is not None and stream.usage.completion_tokens > 0


@EVERY_WIRE
async def test_responses_stream_ends_at_eof_with_usage(provider: OpenAIProvider, fake_upstream: FakeUpstream) -> None:
    stream = await provider.open_stream(call("gpt-4o", endpoint="responses", input="Hi", stream=True))
    events = await drain(stream)
    assert "stream_options" not in fake_upstream.requests[0].json
    assert events[-1].startswith(b"event: response.completed")
    assert stream.error_code == ""
    assert stream.usage is not None and stream.usage.completion_tokens == tokens_for(len(DEFAULT_REPLY))
    assert stream.completion_chars == len(DEFAULT_REPLY)


@EVERY_WIRE
async def test_midstream_failure_ends_with_an_in_band_error_and_done(provider: OpenAIProvider) -> None:
    stream = await provider.open_stream(call("gpt-4o-mini-midstream-fail", stream=True))
    events = await drain(stream)
    assert events[-1] == DONE
    error = orjson.loads(data_of(events[-2]))
    assert_envelope(error, type="server_error", code="upstream_error")
    assert len(events) > 2  # some content went out before the failure
    assert stream.error_code == "upstream_error"


async def test_garbage_stream_ends_with_an_in_band_error(provider: OpenAIProvider) -> None:
    stream = await provider.open_stream(call("gpt-4o-mini-garbage", stream=True))
    events = await drain(stream)
    assert events[-1] == DONE
    assert_envelope(orjson.loads(events[-2].removeprefix(b"data: ")), type="server_error", code="upstream_error")
    assert stream.error_code == "upstream_error"


async def test_closing_a_stream_early_cancels_the_upstream_generation(
    provider: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    stream = await provider.open_stream(call("gpt-4o-mini-drip-100", stream=True))
    events = stream.events()
    first = await anext(events)
    assert first.startswith(b"data: ")
    await events.aclose()
    await stream.aclose()
    assert await wait_for(lambda: fake_upstream.cancelled_streams == 1)
    assert fake_upstream.completed_streams == 0


async def test_idle_timeout_is_an_in_band_upstream_timeout(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    provider = openai(fake_upstream, http_session, Timeouts(connect=5, first_byte=5, idle=0.05, total=30))
    stream = await provider.open_stream(call("gpt-4o-mini-drip-200", stream=True))
    events = await drain(stream)
    assert events[-1] == DONE
    assert_envelope(orjson.loads(events[-2].removeprefix(b"data: ")), type="server_error", code="upstream_timeout")
    assert stream.error_code == "upstream_timeout"
    assert await wait_for(lambda: fake_upstream.cancelled_streams == 1)


@pytest.mark.parametrize("stream", [False, True])
async def test_first_byte_timeout_raises(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession, stream: bool
) -> None:
    provider = openai(fake_upstream, http_session, Timeouts(connect=5, first_byte=0.1, idle=5, total=30))
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamTimeout) as caught:
        if stream:
            await provider.open_stream(call("gpt-4o-mini-slow-500", stream=True))
        else:
            await provider.send(call("gpt-4o-mini-slow-500"))
    assert asyncio.get_running_loop().time() - started < 0.45
    assert caught.value.status_code == 504
    assert_envelope(caught.value.envelope(), type="server_error", code="upstream_timeout")


# --- errors -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_provider_400_passes_through(provider: OpenAIProvider, stream: bool) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        if stream:
            await provider.open_stream(call("gpt-4o-mini-error-400", stream=True))
        else:
            await provider.send(call("gpt-4o-mini-error-400"))
    error = caught.value
    assert error.status_code == 400
    detail = assert_envelope(error.envelope(), type="invalid_request_error", code="invalid_value", param="messages")
    assert detail["message"] == "Invalid value for 'messages'."


async def test_provider_404_passes_through_with_its_code(provider: OpenAIProvider) -> None:
    with pytest.raises(UpstreamRejected) as caught:
        await provider.send(call("gpt-4o-mini-error-404"))
    assert caught.value.status_code == 404
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code="model_not_found")


async def test_provider_401_is_our_credential_problem(provider: OpenAIProvider) -> None:
    with pytest.raises(UpstreamFailed) as caught:
        await provider.send(call("gpt-4o-mini-error-401"))
    assert caught.value.status_code == 502
    detail = assert_envelope(caught.value.envelope(), type="server_error", code="upstream_auth_error")
    assert "Incorrect API key" not in detail["message"]


async def test_wrong_provider_key_is_upstream_auth_error(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    provider = openai(fake_upstream, http_session, api_key="sk-wrong-key-000000")
    with pytest.raises(UpstreamFailed) as caught:
        await provider.send(call("gpt-4o-mini"))
    assert caught.value.code == "upstream_auth_error"
    assert "sk-wrong-key" not in caught.value.body().decode()


@pytest.mark.parametrize("stream", [False, True])
async def test_provider_429_is_overloaded_with_retry_after(provider: OpenAIProvider, stream: bool) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        if stream:
            await provider.open_stream(call("gpt-4o-mini-error-429", stream=True))
        else:
            await provider.send(call("gpt-4o-mini-error-429"))
    assert caught.value.status_code == 503
    assert_envelope(caught.value.envelope(), type="server_error", code="upstream_overloaded")
    # The fake sends `retry-after: 1`: the provider's own hint is kept and passed on.
    assert caught.value.headers["retry-after"] == "1" and caught.value.provider_retry_after == 1.0


@pytest.mark.parametrize("model", ["gpt-4o-mini-error-500", "gpt-4o-mini-garbage"])
async def test_provider_failure_is_upstream_error(provider: OpenAIProvider, model: str) -> None:
    with pytest.raises(UpstreamFailed) as caught:
        await provider.send(call(model))
    assert caught.value.status_code == 502
    assert_envelope(caught.value.envelope(), type="server_error", code="upstream_error")


@pytest.mark.parametrize("stream", [False, True])
async def test_unreachable_provider_is_unavailable(http_session: aiohttp.ClientSession, stream: bool) -> None:
    config = ProviderConfig(name="down", kind="openai", base_url=f"http://127.0.0.1:{closed_port()}/v1", api_key=KEY)
    provider = OpenAIProvider(config, http_session, TIMEOUTS)
    with pytest.raises(ServiceUnavailable) as caught:
        if stream:
            await provider.open_stream(call("gpt-4o-mini", stream=True))
        else:
            await provider.send(call("gpt-4o-mini"))
    assert caught.value.status_code == 503
    assert_envelope(caught.value.envelope(), type="server_error", code="upstream_unavailable")
    # No hint from a provider that never answered; the gateway's answer sets its own (test_resilience.py).
    assert caught.value.provider_retry_after is None


# --- Azure ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/openai", "/"])
async def test_azure_calls_the_deployment_with_api_key(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession, suffix: str
) -> None:
    config = ProviderConfig(name="az", kind="azure", base_url=fake_upstream.url + suffix, api_key=KEY,
                            api_version="2024-10-21")
    provider = AzureProvider(config, http_session, TIMEOUTS)
    reply = await provider.send(call("gpt-4o-deployment", name="azure-4o"))
    (received,) = fake_upstream.requests
    assert received.path == "/openai/deployments/gpt-4o-deployment/chat/completions"
    assert received.query == {"api-version": "2024-10-21"}
    assert received.headers["api-key"] == KEY
    assert "authorization" not in received.headers
    assert orjson.loads(reply.body)["choices"][0]["message"]["content"] == DEFAULT_REPLY


@EVERY_WIRE
async def test_azure_has_a_default_api_version_and_streams(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    config = ProviderConfig(name="az", kind="azure", base_url=fake_upstream.url, api_key=KEY)
    provider = AzureProvider(config, http_session, TIMEOUTS)
    stream = await provider.open_stream(call("gpt-4o-deployment", stream=True))
    events = await drain(stream)
    assert fake_upstream.requests[0].query["api-version"] == AzureProvider.default_api_version
    assert events[-1] == DONE and text_of(payloads(events)) == DEFAULT_REPLY
    assert all(b'"usage"' not in event for event in events)
    assert stream.usage is not None and stream.usage.completion_tokens == tokens_for(len(DEFAULT_REPLY))


async def test_azure_wrong_key_is_upstream_auth_error(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    config = ProviderConfig(name="az", kind="azure", base_url=fake_upstream.url, api_key="not-the-key")
    provider = AzureProvider(config, http_session, TIMEOUTS)
    with pytest.raises(UpstreamFailed) as caught:
        await provider.send(call("gpt-4o-deployment"))
    assert caught.value.code == "upstream_auth_error"


def test_azure_does_not_serve_responses(fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession) -> None:
    config = ProviderConfig(name="az", kind="azure", base_url="http://azure.test", api_key=KEY)
    provider = AzureProvider(config, http_session, TIMEOUTS)
    assert provider.supports("chat/completions") and provider.supports("embeddings")
    assert not provider.supports("responses")
