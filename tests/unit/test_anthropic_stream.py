"""Anthropic SSE → OpenAI chat.completion.chunk translation, and the incremental SSE parser."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from openai.types.chat import ChatCompletionChunk

from core.config import ModelConfig, ProviderConfig
from core.errors import ServiceUnavailable, UpstreamFailed, UpstreamRejected
from core.usage import Usage
from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.anthropic_stream import AnthropicStreamError, StreamTranslator
from gateway.providers.base import UpstreamCall
from gateway.providers.http import Timeouts
from gateway.providers.sse import KEEP_ALIVE, parse_sse
from tests.fake_upstream import WIRES, FakeUpstream
from tests.fake_upstream_behaviour import DEFAULT_REPLY, TOOL_ARGUMENTS, tokens_for
from tests.fake_upstream_wire import Frame, wire_named

# Recorded shape of a Messages stream (ids shortened): a thinking block, text, then one tool_use with its input streamed
# as partial JSON, with pings and the cache fields in usage. message_delta repeats input counts as newer versions do.
TOOL_STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","stop_sequence":null,"usage":{"input_tokens":50,"cache_creation_input_tokens":20,"cache_read_input_tokens":100,"output_tokens":1},"content":[],"stop_reason":null}}

event: ping
data: {"type": "ping"}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants weather."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Okay, let's check"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" the weather."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\":"}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":" \\"San Francisco, CA\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":50,"cache_creation_input_tokens":20,"cache_read_input_tokens":100,"output_tokens":30}}

event: message_stop
data: {"type":"message_stop"}

"""  # noqa: E501

TEXT_STREAM = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":"claude-3-5-sonnet-20241022","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

"""  # noqa: E501


def run(stream: bytes, include_usage: bool) -> tuple[StreamTranslator, list[dict[str, Any]]]:
    translator = StreamTranslator("gpt-4o", 1_700_000_000, include_usage)
    buffer = bytearray(stream)
    chunks = [chunk for name, data in parse_sse(buffer) for chunk in translator.feed(name, orjson.loads(data))]
    assert buffer == b""
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return translator, chunks


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


def test_text_stream() -> None:
    translator, chunks = run(TEXT_STREAM, include_usage=False)
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "Hello"}, {"content": "!"}, {}]
    assert [chunk["choices"][0]["finish_reason"] for chunk in chunks] == [None, None, None, "stop"]
    assert {chunk["id"] for chunk in chunks} == {"chatcmpl-msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["model"] == "gpt-4o" for chunk in chunks)
    assert all(chunk["created"] == 1_700_000_000 and chunk["system_fingerprint"] is None for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)
    assert translator.finished
    assert translator.usage == Usage(prompt_tokens=25, completion_tokens=15)


def test_text_stream_with_usage() -> None:
    _, chunks = run(TEXT_STREAM, include_usage=True)
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    last = ChatCompletionChunk.model_validate(chunks[-1])
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (25, 15, 40)


def test_tool_stream() -> None:
    translator, chunks = run(TOOL_STREAM, include_usage=False)
    assert deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Okay, let's check"},
        {"content": " the weather."},
        {"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"location":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ' "San Francisco, CA"}'}}]},
        {},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    arguments = "".join(
        call["function"]["arguments"] for delta in deltas(chunks) for call in delta.get("tool_calls", [])
    )
    assert orjson.loads(arguments) == {"location": "San Francisco, CA"}
    assert translator.usage == Usage(prompt_tokens=170, completion_tokens=30, cached_tokens=100, cache_write_tokens=20)


def test_tool_stream_with_usage() -> None:
    _, chunks = run(TOOL_STREAM, include_usage=True)
    usage = ChatCompletionChunk.model_validate(chunks[-1]).usage
    assert chunks[-1]["choices"] == []
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (170, 30, 200)
    assert usage.prompt_tokens_details.cached_tokens == 100


def test_parallel_tool_calls_get_ordinals() -> None:
    translator = StreamTranslator("m", 1, False)
    translator.feed("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": {}}})
    out = []
    for index, (tool_id, name) in enumerate([("toolu_a", "a"), ("toolu_b", "b")], start=1):
        block = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
        out += translator.feed("content_block_start", {"index": index, "content_block": block})
    out += translator.feed("content_block_delta", {"index": 2, "delta": {"type": "input_json_delta",
                                                                          "partial_json": "{}"}})
    assert [delta["tool_calls"][0]["index"] for delta in deltas(out)] == [0, 1, 1]


def test_usage_unset_until_message_delta_and_finished_after_stop() -> None:
    translator = StreamTranslator("m", 1, True)
    translator.feed("message_start", {"message": {"id": "msg_1", "usage": {"input_tokens": 3}}})
    assert translator.usage is None and not translator.finished
    assert translator.feed("message_delta", {"delta": {"stop_reason": None}, "usage": {"output_tokens": 4}}) == []
    assert translator.usage == Usage(prompt_tokens=3, completion_tokens=4)
    assert len(translator.feed("message_stop", {"type": "message_stop"})) == 1
    assert translator.finished


def test_event_name_falls_back_to_data_type() -> None:
    translator = StreamTranslator("m", 1, False)
    chunks = translator.feed("message", {"type": "message_start", "message": {"id": "msg_1"}})
    assert deltas(chunks) == [{"role": "assistant", "content": ""}]
    assert translator.feed("", {"type": "unknown_future_event"}) == []


@pytest.mark.parametrize(
    ("etype", "cls", "code"),
    [
        ("overloaded_error", ServiceUnavailable, "upstream_overloaded"),
        ("rate_limit_error", ServiceUnavailable, "upstream_overloaded"),
        ("api_error", UpstreamFailed, "upstream_error"),
        ("something_new", UpstreamFailed, "upstream_error"),
        ("invalid_request_error", UpstreamRejected, "upstream_rejected"),
    ],
)
def test_error_event(etype: str, cls: type, code: str) -> None:
    translator = StreamTranslator("m", 1, False)
    buffer = bytearray(TEXT_STREAM.split(b"event: content_block_stop")[0])
    error = {"type": "error", "error": {"type": etype, "message": "Boom"}, "request_id": "req_1"}
    buffer += b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
    with pytest.raises(AnthropicStreamError) as caught:
        for name, data in parse_sse(buffer):
            translator.feed(name, orjson.loads(data))
    assert type(caught.value.error) is cls
    assert caught.value.error.code == code
    assert "Boom" in caught.value.error.message
    assert not translator.finished


# ---- parse_sse ------------------------------------------------------------------------------------------------------


def test_parse_sse_split_across_buffer_boundaries() -> None:
    whole = parse_sse(bytearray(TOOL_STREAM))
    for size in (1, 2, 7, 64):
        buffer = bytearray()
        events: list[tuple[str, bytes]] = []
        for start in range(0, len(TOOL_STREAM), size):
            buffer += TOOL_STREAM[start : start + size]
            events += parse_sse(buffer)
        assert events == whole
        assert buffer == b""
    assert len(whole) == 18
    assert whole[0][0] == "message_start" and whole[-1] == ("message_stop", b'{"type":"message_stop"}')


def test_parse_sse_keeps_incomplete_event() -> None:
    buffer = bytearray(b'event: ping\ndata: {"type": "ping"}\n\nevent: message_stop\ndata: {"type":')
    assert parse_sse(buffer) == [("ping", b'{"type": "ping"}')]
    assert buffer == b'event: message_stop\ndata: {"type":'
    buffer += b'"message_stop"}\n\n'
    assert parse_sse(buffer) == [("message_stop", b'{"type":"message_stop"}')]
    assert buffer == b""


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_parse_sse_line_endings(newline: bytes) -> None:
    raw = TEXT_STREAM.replace(b"\n", newline)
    for cut in range(len(raw)):  # every split point, including between the \r and \n of a CRLF
        buffer = bytearray(raw[:cut])
        events = parse_sse(buffer)
        buffer += raw[cut:]
        events += parse_sse(buffer)
        assert events == parse_sse(bytearray(TEXT_STREAM)), cut
        assert bytes(buffer) in (b"", b"\r")  # a final lone CR may yet be half of a CRLF


def test_parse_sse_fields() -> None:
    raw = b": keep-alive comment\n\ndata: one\ndata:two\nid: 7\nretry: 10\n\nevent:x\n\ndata\n\n"
    assert parse_sse(bytearray(raw)) == [("message", b"one\ntwo"), ("message", b"")]


def test_parse_sse_returns_keep_alives_only_when_asked() -> None:
    raw = b": ping\r\n\r\n: note\r\ndata: x\r\n\r\n"
    assert parse_sse(bytearray(raw)) == [("message", b"x")]
    assert parse_sse(bytearray(raw), comments=True) == [(KEEP_ALIVE, b""), ("message", b"x")]


# ---- every wire layout -----------------------------------------------------------------------------------------------


def frames_of(recorded: bytes) -> list[Frame]:
    return [(name, orjson.loads(data)) for name, data in parse_sse(bytearray(recorded))]


def translate(reads: list[bytes]) -> list[dict[str, Any]]:
    """The chunks a translator makes of a stream arriving in these reads."""
    translator = StreamTranslator("gpt-4o", 1_700_000_000, include_usage=True)
    buffer, chunks = bytearray(), []
    for read in reads:
        buffer += read
        chunks += [chunk for name, data in parse_sse(buffer) for chunk in translator.feed(name, orjson.loads(data))]
    assert translator.finished and bytes(buffer) in (b"", b"\r")
    return chunks


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("recorded", [TEXT_STREAM, TOOL_STREAM], ids=["text", "tool"])
def test_translation_is_the_same_in_every_layout_and_cut(wire: str, recorded: bytes) -> None:
    expected = run(recorded, include_usage=True)[1]
    raw = b"".join(wire_named(wire).body(frames_of(recorded)))
    for cut in range(0, len(raw), 3):
        assert translate([raw[:cut], raw[cut:]]) == expected, cut


async def claude_stream(
    fake: FakeUpstream, session: aiohttp.ClientSession, upstream: str, **fields: Any
) -> tuple[Any, bytes]:
    """The Anthropic adapter's stream of one call to the fake, and every byte it relayed."""
    config = ProviderConfig(name="ant", kind="anthropic", base_url=fake.url, api_key="sk-ant-fake-key")
    provider = AnthropicProvider(config, session, Timeouts(connect=5, first_byte=5, idle=5, total=30))
    model = ModelConfig(name="claude", provider="ant", upstream=upstream)
    body = {"model": "claude", "messages": [{"role": "user", "content": "Hello there!"}], "stream": True, **fields}
    stream = await provider.open_stream(UpstreamCall("chat/completions", body, model, True, "req_test"))
    try:
        return stream, b"".join([chunk async for chunk in stream.events()])
    finally:
        await stream.aclose()


@pytest.mark.parametrize("fake_wire", WIRES)
async def test_provider_stream_in_every_layout(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    stream, data = await claude_stream(fake_upstream, http_session, "claude-sonnet-4-5")
    chunks = [orjson.loads(event[6:]) for event in data.split(b"\n\n") if event and event != b"data: [DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == DEFAULT_REPLY
    assert all("usage" not in chunk for chunk in chunks) and data.endswith(b"data: [DONE]\n\n")
    assert stream.error_code == "" and stream.completion_chars == len(DEFAULT_REPLY)
    assert stream.usage is not None and stream.usage.completion_tokens == tokens_for(len(DEFAULT_REPLY))


@pytest.mark.parametrize("fake_wire", WIRES)
async def test_provider_stream_cut_before_message_stop_is_an_upstream_error(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    stream, data = await claude_stream(fake_upstream, http_session, "claude-sonnet-4-5-truncated")
    events = [event for event in data.split(b"\n\n") if event]
    assert events[-1] == b"data: [DONE]"
    assert orjson.loads(events[-2][6:])["error"]["code"] == "upstream_error"
    assert stream.error_code == "upstream_error"


async def test_a_tool_call_stream_without_usage_counts_its_arguments(
    fake_upstream: FakeUpstream, http_session: aiohttp.ClientSession
) -> None:
    # Without usage the ledger estimates from these characters: a tool call must not be estimated as nothing.
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    stream, _ = await claude_stream(fake_upstream, http_session, "claude-sonnet-4-5-tools-no-usage", tools=tools)
    assert stream.usage is None and stream.error_code == ""
    assert stream.completion_chars == len(TOOL_ARGUMENTS)
