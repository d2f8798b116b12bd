"""The fake upstream speaks OpenAI, Azure OpenAI and Anthropic well enough for the official clients' parsers."""

from __future__ import annotations

import asyncio
import base64
import math
import signal
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.fake_upstream import WIRES, FakeUpstream

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the weather?"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
REPLY = "Hello from the fake upstream."
ANTHROPIC_HEADERS = {"x-api-key": "sk-ant-fake-key", "anthropic-version": "2023-06-01"}
# Every layout is valid SSE and JSON as the official SDK's parser reads it.
EVERY_WIRE = pytest.mark.parametrize("fake_wire", WIRES)


@pytest.fixture
async def http(fake: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.url) as raw:
        yield raw


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of an ``event:``/``data:`` stream."""
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], httpx.Response(200, content=lines["data"]).json()))
    return events


async def wait_for(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@EVERY_WIRE
async def test_chat_completion_parses_with_deterministic_usage(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.id.startswith("chatcmpl-fake") and completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini" and isinstance(completion.created, int) and completion.system_fingerprint
    choice = completion.choices[0]
    assert (choice.message.content, choice.message.role, choice.finish_reason) == (REPLY, "assistant", "stop")
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == math.ceil((9 + 20) / 4) and usage.completion_tokens == math.ceil(len(REPLY) / 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 0
    recorded = fake.requests[-1]
    assert (recorded.method, recorded.path, recorded.json["model"]) == ("POST", "/v1/chat/completions", "gpt-4o-mini")
    assert recorded.headers["authorization"] == f"Bearer {fake.api_key}"


@pytest.mark.parametrize(
    ("model", "extra", "content"),
    [
        ("gpt-4o", {"messages": [{"role": "user", "content": "echo: say this"}]}, "say this"),
        ("gpt-4o", {"messages": [{"role": "user", "content": [{"type": "text", "text": "echo:x"}]}]}, "x"),
        ("gpt-4o", {"response_format": {"type": "json_object"}}, '{"ok":true}'),
    ],
)
async def test_chat_content_follows_the_request(
    client: openai.AsyncOpenAI, model: str, extra: dict[str, Any], content: str
) -> None:
    completion = await client.chat.completions.create(**{"model": model, "messages": MESSAGES, **extra})
    assert completion.choices[0].message.content == content


async def test_n_choices_and_cached_tokens(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="gpt-4o-cached", messages=MESSAGES, n=2)
    assert [choice.index for choice in completion.choices] == [0, 1]
    assert completion.usage and completion.usage.prompt_tokens_details
    assert completion.usage.prompt_tokens_details.cached_tokens == completion.usage.prompt_tokens // 2


@EVERY_WIRE
async def test_stream_without_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == REPLY
    assert len(chunks) == 5 and chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None and chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1


async def test_stream_with_usage_ends_with_a_usage_chunk(http: httpx.AsyncClient, fake: FakeUpstream) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    response = await http.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {fake.api_key}"})
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = response.text.split("\n\n")
    assert frames[-2:] == ["data: [DONE]", ""] and all(frame.startswith('data: {"id":') for frame in frames[:-2])
    chunks = [httpx.Response(200, content=frame[6:]).json() for frame in frames[:-2]]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert ": " not in frames[0][6:], "compact JSON, as OpenAI sends it"
    assert fake.completed_streams == 1


@EVERY_WIRE
async def test_tool_call_json_and_streamed(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(model="gpt-4o-tools", messages=MESSAGES, tools=TOOLS)
    message = completion.choices[0].message
    assert message.content is None and completion.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls and message.tool_calls[0].id == "call_fake1"
    assert (message.tool_calls[0].function.name, message.tool_calls[0].function.arguments) == (
        "get_weather",
        '{"location":"Paris"}',
    )
    forced = {"type": "function", "function": {"name": "get_weather"}}
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, tools=TOOLS, tool_choice=forced, stream=True
    )
    calls = [call for chunk in [c async for c in stream] for call in chunk.choices[0].delta.tool_calls or []]
    assert calls[0].id == "call_fake1" and calls[0].function and calls[0].function.name == "get_weather"
    assert "".join(call.function.arguments or "" for call in calls if call.function) == '{"location":"Paris"}'


async def test_embeddings_float_and_base64(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    floats = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format="float")
    encoded = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])  # SDK asks base64
    assert fake.requests[-1].json["encoding_format"] == "base64"
    assert [item.embedding for item in floats.data] == [item.embedding for item in encoded.data]
    assert len(floats.data[0].embedding) == 8 and floats.data[0].embedding != floats.data[1].embedding
    assert math.isclose(sum(value * value for value in floats.data[0].embedding), 1.0, rel_tol=1e-5)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 2
    sized = await client.embeddings.create(model="e", input="hello", dimensions=32, encoding_format="float")
    assert len(sized.data[0].embedding) == 32


async def test_embeddings_base64_is_little_endian_float32(http: httpx.AsyncClient, fake: FakeUpstream) -> None:
    body = {"model": "e", "input": [[1, 2, 3]], "encoding_format": "base64"}
    response = await http.post("/v1/embeddings", json=body, headers={"authorization": f"Bearer {fake.api_key}"})
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    assert len(struct.unpack("<8f", raw)) == 8 and response.json()["usage"]["prompt_tokens"] == 3


@EVERY_WIRE
async def test_completions_json_and_stream(client: openai.AsyncOpenAI) -> None:
    completion = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="echo: done")
    assert completion.object == "text_completion" and completion.choices[0].text == "done"
    assert completion.usage and completion.usage.prompt_tokens == 3
    stream = await client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="hi", stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == REPLY
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


@EVERY_WIRE
async def test_responses_json_and_stream(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(model="gpt-4o", input="echo: hi there", instructions="Be brief.")
    assert response.object == "response" and response.status == "completed" and response.output_text == "hi there"
    assert response.usage and response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    stream = await client.responses.create(model="gpt-4o", input="hello", stream=True)
    events = [event async for event in stream]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == REPLY and [event.sequence_number for event in events] == list(range(len(events)))


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    models = [model.id async for model in client.models.list()]
    assert "gpt-4o-mini" in models and (await client.models.retrieve("gpt-4o")).id == "gpt-4o"


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("gpt-4o-error-400", openai.BadRequestError),
        ("gpt-4o-error-401", openai.AuthenticationError),
        ("gpt-4o-error-404", openai.NotFoundError),
        ("gpt-4o-error-429", openai.RateLimitError),
        ("gpt-4o-error-500", openai.InternalServerError),
        ("gpt-4o-error-503", openai.InternalServerError),
    ],
)
async def test_error_models_map_to_sdk_errors(client: openai.AsyncOpenAI, model: str, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        await client.chat.completions.create(model=model, messages=MESSAGES)
    assert isinstance(raised.value, openai.APIStatusError) and isinstance(raised.value.body, dict)
    assert set(raised.value.body) == {"message", "type", "param", "code"}
    if raised.value.status_code == 429:
        assert raised.value.response.headers["retry-after"] == "1"


async def test_wrong_key_is_refused(fake: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key="sk-wrong", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as raised:
            await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert raised.value.code == "invalid_api_key"


async def test_flaky_fails_then_succeeds(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="gpt-4o-flaky", messages=MESSAGES)
    assert (await client.chat.completions.create(model="gpt-4o-flaky", messages=MESSAGES)).choices


async def test_garbage_slow_and_no_usage(http: httpx.AsyncClient, fake: FakeUpstream) -> None:
    headers = {"authorization": f"Bearer {fake.api_key}"}
    garbage = await http.post("/v1/chat/completions", json={"model": "garbage", "messages": MESSAGES}, headers=headers)
    assert (garbage.status_code, garbage.content) == (200, b"not json at all")
    assert garbage.headers["content-type"].startswith("application/json")
    started = time.monotonic()
    plain = await http.post(
        "/v1/chat/completions", json={"model": "no-usage-slow-150", "messages": MESSAGES}, headers=headers
    )
    assert time.monotonic() - started >= 0.14 and "usage" not in plain.json()
    body = {"model": "no-usage", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    streamed = await http.post("/v1/chat/completions", json=body, headers=headers)
    assert '"usage"' not in streamed.text and streamed.text.endswith("data: [DONE]\n\n")


async def test_midstream_fail_raises_in_the_sdk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="gpt-4o-midstream-fail", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 2 and received[1].choices[0].delta.content


async def test_client_closing_a_drip_stream_counts_as_cancelled(client: openai.AsyncOpenAI, fake: FakeUpstream) -> None:
    stream = await client.chat.completions.create(model="gpt-4o-drip-50", messages=MESSAGES, stream=True)
    async with stream:
        async for _ in stream:
            break
    await wait_for(lambda: fake.cancelled_streams == 1)
    assert fake.completed_streams == 0


async def test_azure_deployment_routes(fake: FakeUpstream) -> None:
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake.url, api_key=fake.api_key, api_version="2024-10-21", max_retries=0
    ) as azure:
        completion = await azure.chat.completions.create(model="my-gpt-tools", messages=MESSAGES, tools=TOOLS)
        vectors = await azure.embeddings.create(model="my-embedder", input="hi", encoding_format="float")
    assert completion.model == "my-gpt-tools" and completion.choices[0].finish_reason == "tool_calls"
    assert len(vectors.data[0].embedding) == 8
    recorded = fake.requests[0]
    assert recorded.path == "/openai/deployments/my-gpt-tools/chat/completions"
    assert recorded.query["api-version"] == "2024-10-21" and recorded.headers["api-key"] == fake.api_key


async def test_azure_requires_api_version(http: httpx.AsyncClient, fake: FakeUpstream) -> None:
    response = await http.post(
        "/openai/deployments/d/chat/completions", json={"messages": MESSAGES}, headers={"api-key": fake.api_key}
    )
    assert response.status_code == 401 and response.json()["error"]["code"] == "401"


async def test_anthropic_message(http: httpx.AsyncClient) -> None:
    body = {"model": "claude-cached", "max_tokens": 100, "system": "Be brief.", "messages": MESSAGES[1:]}
    message = (await http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)).json()
    assert message["id"].startswith("msg_fake") and message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [{"type": "text", "text": REPLY}] and message["stop_reason"] == "end_turn"
    assert message["stop_sequence"] is None and message["model"] == "claude-cached"
    usage = message["usage"]
    assert usage["input_tokens"] == math.ceil(29 / 4) and usage["output_tokens"] == math.ceil(len(REPLY) / 4)
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (100, 20)


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind"),
    [
        ({"model": "claude", "messages": MESSAGES[1:]}, ANTHROPIC_HEADERS, 400, "invalid_request_error"),
        ({"model": "claude", "max_tokens": 9, "messages": []}, {"x-api-key": "bad"}, 401, "authentication_error"),
        ({"model": "claude-overloaded", "max_tokens": 9, "messages": []}, ANTHROPIC_HEADERS, 529, "overloaded_error"),
        ({"model": "claude-error-429", "max_tokens": 9, "messages": []}, ANTHROPIC_HEADERS, 429, "rate_limit_error"),
    ],
)
async def test_anthropic_errors(
    http: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str], status: int, kind: str
) -> None:
    response = await http.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == status and response.json()["type"] == "error"
    assert response.json()["error"]["type"] == kind and response.json()["error"]["message"]


async def test_anthropic_text_stream_event_sequence(http: httpx.AsyncClient, fake: FakeUpstream) -> None:
    body = {"model": "claude", "max_tokens": 100, "messages": MESSAGES[1:], "stream": True}
    events = sse_events((await http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)).text)
    assert all(name == data["type"] for name, data in events)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert (
        start["content"] == [] and start["usage"]["output_tokens"] == 1 and "cache_read_input_tokens" in start["usage"]
    )
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == REPLY and events[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2][1]["usage"]["output_tokens"] == math.ceil(len(REPLY) / 4) and fake.completed_streams == 1


async def test_anthropic_tool_use_json_and_stream(http: httpx.AsyncClient) -> None:
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    body = {"model": "claude-tools", "max_tokens": 100, "messages": MESSAGES[1:], "tools": tools}
    message = (await http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)).json()
    block = {"type": "tool_use", "id": "toolu_fake1", "name": "get_weather", "input": {"location": "Paris"}}
    assert message["content"] == [block] and message["stop_reason"] == "tool_use"
    events = sse_events(
        (await http.post("/v1/messages", json={**body, "stream": True}, headers=ANTHROPIC_HEADERS)).text
    )
    assert events[1][1]["content_block"] == {**block, "input": {}}
    partial = "".join(data["delta"]["partial_json"] for name, data in events if name == "content_block_delta")
    assert partial == '{"location":"Paris"}' and events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_anthropic_midstream_fail_truncates(http: httpx.AsyncClient) -> None:
    body = {"model": "claude-midstream-fail", "max_tokens": 100, "messages": MESSAGES[1:], "stream": True}
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post("/v1/messages", json=body, headers=ANTHROPIC_HEADERS)


async def test_introspection_routes(client: openai.AsyncOpenAI, http: httpx.AsyncClient, fake: FakeUpstream) -> None:
    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    recorded = (await http.get("/_fake/requests")).json()
    assert recorded[0]["json"]["messages"] == MESSAGES and recorded[0]["headers"]["authorization"].startswith("Bearer")
    assert (await http.get("/_fake/stats")).json() == {"cancelled_streams": 0, "completed_streams": 0, "requests": 1}
    assert (await http.post("/_fake/reset")).status_code == 200
    assert fake.requests == [] and (await http.get("/_fake/stats")).json()["requests"] == 0


@pytest.mark.slow
async def test_cli_serves_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fake_upstream", "--port", "0", "--wire", "spaced", cwd=Path(__file__).parents[2],
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
    assert line.startswith("listening on http://127.0.0.1:")
    async with httpx.AsyncClient() as http:
        assert (await http.get(line.split()[-1] + "/_fake/stats")).json()["requests"] == 0
        body = {"model": "gpt-4o", "messages": MESSAGES}
        answer = await http.post(line.split()[-1] + "/v1/chat/completions", json=body,
                                 headers={"authorization": "Bearer sk-fake-upstream-key"})
        assert b'"usage": {' in answer.content, "--wire spaced lays the JSON out with spaces"
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), timeout=10) == 0


# ---- wire layouts ----------------------------------------------------------------------------------------------------


async def http_chunks(fake: FakeUpstream, path: str, body: dict[str, Any]) -> list[bytes]:
    """The HTTP chunks of a streamed answer, one per write of the server (so cuts are visible whatever TCP does)."""
    reader, writer = await asyncio.open_connection(fake.host, fake.port)
    payload = orjson.dumps(body)
    writer.write(
        f"POST {path} HTTP/1.1\r\nhost: fake\r\nauthorization: Bearer {fake.api_key}\r\ncontent-type: application/json"
        f"\r\ncontent-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode() + payload
    )
    raw = await reader.read()
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    chunks = []
    while (size := int(rest[: rest.index(b"\r\n")], 16)) > 0:
        start = rest.index(b"\r\n") + 2
        chunks.append(rest[start : start + size])
        rest = rest[start + size + 2 :]
    return chunks


CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "echo: café ✓"}], "stream": True}


@pytest.mark.parametrize(
    ("fake_wire", "present", "absent"),
    [
        ("compact", [b'data: {"id":', b"\n\n"], [b"\r", b'": ']),
        ("spaced", [b'data: {"choices": [{"finish_reason": null', b"\\u00e9", b"\\u2713"], [b"\r", "é".encode()]),
        ("multiline", [b": keep-alive\n\n", b"data: {\ndata:   \"id\": ", "é".encode()], [b"\r"]),
        ("crlf", [b"\r\n\r\ndata: {", b"data: [DONE]\r\n\r\n"], [b'": ', b"\n\n"]),
        ("cr", [b"\r\rdata: {", b"data: [DONE]\r\r"], [b"\n"]),
        ("split", [b'": ', "é".encode(), b"\r\n\r\n"], []),
    ],
)
async def test_each_wire_has_its_layout(fake: FakeUpstream, present: list[bytes], absent: list[bytes]) -> None:
    body = b"".join(await http_chunks(fake, "/v1/chat/completions", CHAT))
    assert all(part in body for part in present), body[:300]
    assert not any(part in body for part in absent), body[:300]
    assert body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").endswith(b"data: [DONE]\n\n")


async def test_split_wire_cuts_events_at_awkward_places(fake: FakeUpstream) -> None:
    chunks = await http_chunks(fake, "/v1/chat/completions", {**CHAT, "model": "gpt-4o-wire-split"})
    assert len(chunks) > 3 * 5  # every event in several writes
    ends = {chunk[-1:] for chunk in chunks}
    assert b"\r" in ends, "a write ends between the CR and the LF of a line end"
    assert any(chunk.endswith(b"da") for chunk in chunks), "a write ends inside a field name"
    undecodable = []
    for chunk in chunks:
        try:
            chunk.decode()
        except UnicodeDecodeError:
            undecodable.append(chunk)
    assert undecodable, "a write ends inside a multi-byte character"
    assert "✓".encode() in b"".join(chunks)


@pytest.mark.parametrize(("model", "crlf"), [("gpt-4o", False), ("gpt-4o-wire-crlf", True), ("gpt-4o-wire-cr", False)])
async def test_model_name_chooses_the_wire(fake: FakeUpstream, model: str, crlf: bool) -> None:
    body = b"".join(await http_chunks(fake, "/v1/chat/completions", {**CHAT, "model": model}))
    assert (b"\r\n" in body) is crlf


@EVERY_WIRE
async def test_truncated_streams_end_cleanly_before_their_last_events(client: openai.AsyncOpenAI) -> None:
    chat = await client.chat.completions.create(model="gpt-4o-truncated", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in chat]  # no [DONE], yet no transport error either
    assert chunks and all(chunk.choices[0].finish_reason is None for chunk in chunks)
    stream = await client.responses.create(model="gpt-4o-truncated", input="hello", stream=True)
    events = [event async for event in stream]
    assert events[0].type == "response.created" and "response.completed" not in {event.type for event in events}
