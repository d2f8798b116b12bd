"""OpenAI-style streams read right however the provider lays them out: usage, text length, errors, the end."""

from __future__ import annotations

from typing import Any, cast

import aiohttp
import orjson
import pytest

from core.config import ProviderConfig
from core.usage import estimate_tokens
from gateway.providers.http import UpstreamHTTP
from gateway.providers.openai import OpenAIProvider, OpenAIStream
from tests.fake_upstream import WIRES, FakeUpstream
from tests.fake_upstream_behaviour import DEFAULT_REPLY, TOOL_ARGUMENTS, tokens_for
from tests.fake_upstream_wire import Wire, wire_named
from tests.unit.helpers import assert_envelope
from tests.unit.test_openai_provider import (
    DONE,
    KEY,
    TIMEOUTS,
    call,
    data_of,
    drain,
    openai,
    payloads,
    raw_upstream,
    text_of,
)

EVERY_WIRE = pytest.mark.parametrize("fake_wire", WIRES)
# Escapes, quotes, a newline and characters of two, three and four bytes in UTF-8.
AWKWARD = 'café ✓ "quoted" \\ back\nslash 日本語 🚀'


@pytest.fixture
def provider(fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession) -> OpenAIProvider:
    return openai(fake_upstream, http_session)


def echo(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"echo: {text}"}]


@EVERY_WIRE
@pytest.mark.parametrize("include_usage", [False, True])
async def test_text_usage_and_what_the_client_gets_in_every_layout(
    provider: OpenAIProvider, include_usage: bool
) -> None:
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = await provider.open_stream(call("gpt-4o-mini", stream=True, messages=echo(AWKWARD), **options))
    events = await drain(stream)
    chunks = payloads(events)
    assert text_of(chunks) == AWKWARD
    assert stream.completion_chars == len(AWKWARD)
    assert stream.usage is not None and stream.usage.completion_tokens == tokens_for(len(AWKWARD))
    with_usage = [chunk for chunk in chunks if "usage" in chunk]
    if include_usage:
        assert [chunk["usage"] is not None for chunk in with_usage] == [False] * (len(chunks) - 1) + [True]
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == tokens_for(len(AWKWARD))
    else:
        assert with_usage == [], "no usage field and no usage-only chunk for a client that did not ask"
    assert events[-1] == DONE and stream.error_code == ""


@EVERY_WIRE
async def test_provider_without_usage_leaves_an_estimate_from_the_text(provider: OpenAIProvider) -> None:
    stream = await provider.open_stream(call("gpt-4o-mini-no-usage", stream=True))
    events = await drain(stream)
    assert text_of(payloads(events)) == DEFAULT_REPLY
    assert stream.usage is None
    assert stream.completion_chars == len(DEFAULT_REPLY)
    assert estimate_tokens(stream.completion_chars) == tokens_for(len(DEFAULT_REPLY)) > 0


@EVERY_WIRE
@pytest.mark.parametrize("endpoint", ["chat/completions", "responses"])
async def test_tool_call_arguments_count_as_generated_text(provider: OpenAIProvider, endpoint: str) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    fields = {"input": "hi", "tools": [tool]} if endpoint == "responses" else {"tools": [tool]}
    stream = await provider.open_stream(call("gpt-4o-mini-tools", endpoint=endpoint, stream=True, **fields))
    await drain(stream)
    assert stream.completion_chars == len(TOOL_ARGUMENTS)
    assert stream.usage is not None and stream.usage.completion_tokens == tokens_for(len(TOOL_ARGUMENTS))


@EVERY_WIRE
async def test_responses_stream_ended_before_response_completed_is_an_upstream_error(
    provider: OpenAIProvider,
) -> None:
    stream = await provider.open_stream(call("gpt-4o-truncated", endpoint="responses", input="Hi", stream=True))
    events = await drain(stream)
    assert not any(event.startswith(b"event: response.completed") for event in events)
    assert events[-1] == DONE
    assert_envelope(orjson.loads(data_of(events[-2])), type="server_error", code="upstream_error")
    assert stream.error_code == "upstream_error"
    assert stream.usage is None and stream.completion_chars > 0  # the text relayed so far is billed as estimated


@EVERY_WIRE
async def test_chat_stream_ended_before_done_is_an_upstream_error(provider: OpenAIProvider) -> None:
    stream = await provider.open_stream(call("gpt-4o-mini-truncated", stream=True))
    events = await drain(stream)
    assert events[-1] == DONE
    assert_envelope(orjson.loads(data_of(events[-2])), type="server_error", code="upstream_error")
    assert stream.error_code == "upstream_error" and stream.completion_chars > 0


async def raw_stream(
    http_session: aiohttp.ClientSession, body: bytes, **fields: Any
) -> tuple[OpenAIStream, list[bytes]]:
    """Stream a call from a provider answering exactly these bytes."""
    endpoint = fields.pop("endpoint", "chat/completions")
    async with raw_upstream(f"/v1/{endpoint}", body, "text/event-stream") as base_url:
        config = ProviderConfig(name="raw", kind="openai", base_url=base_url, api_key=KEY)
        stream = await OpenAIProvider(config, http_session, TIMEOUTS).open_stream(
            call("m", endpoint=endpoint, stream=True, **fields)
        )
        return stream, await drain(stream)


def sse(*events: tuple[str | None, Any], newline: bytes = b"\n") -> bytes:
    wire = Wire("test", spaced=True, newline=newline)
    return b"".join(wire.frame(event) for event in events)


@pytest.mark.parametrize("kind", ["response.failed", "error"])
async def test_responses_failure_events_end_the_stream_as_upstream_error(
    http_session: aiohttp.ClientSession, kind: str
) -> None:
    usage = {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}
    failed = {"type": kind, "response": {"status": "failed", "error": {"code": "server_error"}, "usage": usage}}
    body = sse(("response.created", {"type": "response.created"}), (kind, failed))
    stream, events = await raw_stream(http_session, body, endpoint="responses", input="hi")
    assert events[-1].startswith(f"event: {kind}".encode())  # relayed as sent: the SDK raises on it
    assert stream.error_code == "upstream_error"
    assert stream.usage is not None and stream.usage.completion_tokens == 3


async def test_responses_incomplete_is_a_normal_end_with_usage(http_session: aiohttp.ClientSession) -> None:
    usage = {"input_tokens": 5, "output_tokens": 16, "total_tokens": 21}
    incomplete = {"type": "response.incomplete", "response": {"status": "incomplete", "usage": usage}}
    stream, events = await raw_stream(http_session, sse((None, incomplete)), endpoint="responses", input="hi")
    assert stream.error_code == "" and stream.usage is not None and stream.usage.completion_tokens == 16
    assert len(events) == 1


async def test_usage_on_every_chunk_is_removed_and_read(http_session: aiohttp.ClientSession) -> None:
    # vLLM's continuous usage stats: a running usage object on each content chunk.
    chunks = [{"choices": [{"index": 0, "delta": {"content": piece}}],
               "usage": {"prompt_tokens": 4, "completion_tokens": n, "total_tokens": 4 + n}}
              for n, piece in enumerate(("Hel", "lo"), start=1)]
    stream, events = await raw_stream(http_session, sse(*((None, c) for c in chunks), (None, b"[DONE]")))
    assert payloads(events) == [{"choices": c["choices"]} for c in chunks]
    assert stream.usage is not None and stream.usage.completion_tokens == 2


@pytest.mark.parametrize("failure", [
    (None, {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}),
    ("error", {"message": "Overloaded", "code": 529}),  # an `event: error` as some compatible servers send it
], ids=["error-object", "error-event"])
async def test_a_providers_error_event_is_relayed_once_and_recorded(
    http_session: aiohttp.ClientSession, failure: tuple[str | None, Any]
) -> None:
    body = sse((None, {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}), failure)
    stream, events = await raw_stream(http_session, body)
    assert orjson.loads(data_of(events[1])) == failure[1]
    assert events[-1] == DONE and len(events) == 3, "the provider's error, then the end: no second error"
    assert stream.error_code == "upstream_error"


async def test_events_before_a_malformed_one_still_reach_the_client(http_session: aiohttp.ClientSession) -> None:
    body = sse((None, {"choices": [{"index": 0, "delta": {"content": "Hi"}}]})) + b"data: {not json\n\n"
    stream, events = await raw_stream(http_session, body)
    assert text_of(payloads(events[:1])) == "Hi"
    assert_envelope(orjson.loads(data_of(events[1])), type="server_error", code="upstream_error")
    assert stream.error_code == "upstream_error" and events[-1] == DONE


class Chunks:
    """The upstream side of a stream, handing out prepared reads (as aiohttp's readany would)."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def read_chunk(self, _: object) -> bytes:
        return self.reads.pop(0) if self.reads else b""


async def relay(reads: list[bytes], include_usage: bool) -> tuple[OpenAIStream, bytes]:
    """What the client receives of a stream arriving in these reads."""
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    upstream_call = call("m", stream=True, **options)
    stream = OpenAIStream(cast(UpstreamHTTP, Chunks(reads)), cast(aiohttp.ClientResponse, None), upstream_call)
    return stream, b"".join([out async for out in stream.events()])


async def test_keep_alive_comments_are_passed_on() -> None:
    body = b": OPENROUTER PROCESSING\r\n\r\n" + sse((None, {"choices": []}), (None, b"[DONE]"), newline=b"\r\n")
    stream, relayed = await relay([body], include_usage=False)
    assert relayed == b':\n\ndata: {"choices": []}\n\ndata: [DONE]\n\n'
    assert stream.error_code == ""


@pytest.mark.parametrize("wire", ["split", "multiline", "cr"])
@pytest.mark.parametrize("include_usage", [False, True])
async def test_every_cut_between_two_reads_gives_the_same_relay(wire: str, include_usage: bool) -> None:
    frames = [(None, {"id": "c", "choices": [{"index": 0, "delta": {"content": piece}}], "usage": None})
              for piece in ("é✓", "日🚀")]
    usage = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    frames += [(None, {"id": "c", "choices": [], "usage": usage}), (None, b"[DONE]")]
    raw = b"".join(wire_named(wire).body(frames))
    whole_stream, whole = await relay([raw], include_usage)
    for cut in range(1, len(raw)):
        stream, relayed = await relay([raw[:cut], raw[cut:]], include_usage)
        assert relayed == whole, cut
        assert (stream.usage, stream.completion_chars) == (whole_stream.usage, 4), cut
    assert (b'"usage"' in whole) is include_usage and whole.endswith(b"data: [DONE]\n\n")


async def test_odd_shapes_from_a_provider_do_not_break_the_relay() -> None:
    odd = [
        {"choices": 5, "usage": {"prompt_tokens": "many", "completion_tokens": 2.0, "prompt_tokens_details": 7}},
        {"choices": [{"index": 0, "delta": {"content": "Hi", "tool_calls": 5}}, "x"]},
    ]
    stream, relayed = await relay([sse(*((None, chunk) for chunk in odd), (None, b"[DONE]"))], include_usage=True)
    assert stream.error_code == "" and stream.completion_chars == 2 and relayed.endswith(b"data: [DONE]\n\n")
    assert stream.usage is not None and (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (0, 2)
