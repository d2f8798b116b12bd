"""Cached answers: stored compactly, refused when cut or failed, replayed as the JSON or SSE a provider sends."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from core.usage import Usage
from gateway.cache import CachedEntry, cacheable_reply, entry_from_reply, entry_from_stream, replay_json, replay_sse
from gateway.cache.assemble import read_chunks
from gateway.providers.base import error_event, stream_ended_early

CHAT, COMPLETIONS = "chat/completions", "completions"
USAGE = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27, "prompt_tokens_details": {"cached_tokens": 8}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
CALL_2 = {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}}


def chat_answer(*messages: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    choices = [
        {"index": i, "message": {"role": "assistant", "refusal": None} | m, "logprobs": None, "finish_reason": finish}
        for i, m in enumerate(messages)
    ]
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_750_000_000, "model": "gpt-4o-mini-2024-07-18",
        "choices": choices, "usage": USAGE, "system_fingerprint": "fp_1",
    }


TEXT = chat_answer({"content": "Hello there, how can I help?"})
TOOLS = chat_answer({"content": None, "tool_calls": [CALL, CALL_2]}, finish="tool_calls")
TWO = chat_answer({"content": "One"}, {"content": "Two"})
REFUSAL = chat_answer({"content": None, "refusal": "I can't help with that."})
COMPLETION = {
    "id": "cmpl-1", "object": "text_completion", "created": 1_750_000_000, "model": "gpt-3.5-turbo-instruct",
    "choices": [{"text": " world", "index": 0, "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
}


def entry_of(answer: dict[str, Any], endpoint: str = CHAT) -> CachedEntry:
    entry = entry_from_reply(orjson.dumps(answer), endpoint=endpoint, request_id="req-1", stored_at=100.0)
    assert entry is not None
    return entry


def reassembled(events: list[bytes], endpoint: str = CHAT, usage: Usage | None = None) -> dict[str, Any]:
    entry = entry_from_stream(events, endpoint=endpoint, request_id="req-2", stored_at=1.0, usage=usage)
    assert entry is not None
    return dict(orjson.loads(entry.body))


def semantic(answer: dict[str, Any]) -> Any:
    """What a client reads from an answer (ids, model, choices, usage), without fields that may be absent or null."""
    def choice(c: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in (c.get("message") or c).items() if v is not None} | {
            "index": c["index"], "finish_reason": c["finish_reason"]
        }
    usage = answer.get("usage") or {}
    tokens = (usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens"))
    return (answer["id"], answer["model"], [choice(c) for c in answer["choices"]], tokens)


def sse(*chunks: dict[str, Any] | str) -> list[bytes]:
    return [b"data: " + (c.encode() if isinstance(c, str) else orjson.dumps(c)) + b"\n\n" for c in chunks]


def test_an_entry_survives_storage_byte_for_byte() -> None:
    body = b'{\n  "id": "x",\n  "choices": []\n}'  # a provider's pretty-printed body keeps its newlines
    entry = CachedEntry(CHAT, body, 20, 7, 8, True, 1_750_000_000.25, "req-\u00e9", "gpt-4o")
    assert CachedEntry.from_bytes(entry.to_bytes()) == entry


@pytest.mark.parametrize("data", [b"", b"garbage", b'[2, "chat/completions"]\n{}', b'{"a": 1}\n{}'])
def test_bytes_that_are_not_an_entry_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        CachedEntry.from_bytes(data)


def test_a_reply_entry_keeps_the_body_usage_and_served_model() -> None:
    body = orjson.dumps(TEXT)
    entry = entry_from_reply(body, endpoint=CHAT, request_id="req-1", stored_at=5.0)
    assert entry is not None and replay_json(entry) == body
    assert (entry.prompt_tokens, entry.completion_tokens, entry.cached_tokens) == (20, 7, 8)
    assert (entry.model, entry.request_id, entry.usage_reported, entry.age(65.9)) == (TEXT["model"], "req-1", True, 60)


@pytest.mark.parametrize(
    "answer",
    [
        chat_answer({"content": "cut"}, finish="length"),
        TWO | {"choices": [TWO["choices"][0], TWO["choices"][1] | {"finish_reason": "length"}]},
        {"error": {"message": "bad", "type": "server_error", "param": None, "code": None}},
        {"object": "chat.completion", "choices": []},
        COMPLETION | {"choices": [{"text": "x", "index": 0, "logprobs": None, "finish_reason": "length"}]},
    ],
)
def test_errors_and_cut_answers_are_not_cacheable(answer: dict[str, Any]) -> None:
    assert not cacheable_reply(orjson.dumps(answer))
    assert entry_from_reply(orjson.dumps(answer), endpoint=CHAT, request_id="r", stored_at=0.0) is None


def test_complete_answers_are_cacheable() -> None:
    embeddings = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}], "model": "e"}
    assert all(cacheable_reply(orjson.dumps(a)) for a in (TEXT, TOOLS, TWO, REFUSAL, COMPLETION, embeddings))
    assert not cacheable_reply(b"not json")
    entry = entry_of(embeddings | {"usage": {"prompt_tokens": 3, "total_tokens": 3}}, "embeddings")
    CreateEmbeddingResponse.model_validate_json(replay_json(entry))
    assert (entry.prompt_tokens, entry.completion_tokens) == (3, 0)


@pytest.mark.parametrize("answer", [TEXT, TOOLS, TWO, REFUSAL], ids=["text", "tool_calls", "n2", "refusal"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_chat_json_to_sse_and_back_keeps_the_answer(answer: dict[str, Any], include_usage: bool) -> None:
    events = replay_sse(entry_of(answer), include_usage)
    chunks = [ChatCompletionChunk.model_validate_json(e[6:]) for e in events[:-1]]  # the SDK reads every chunk
    assert events[-1] == b"data: [DONE]\n\n"
    assert all(e.startswith(b"data: ") and e.endswith(b"\n\n") for e in events)
    assert all(c.choices[0].delta.role == "assistant" for c in chunks if c.choices and c.choices[0].delta.content == "")
    again = reassembled(events, usage=Usage(20, 7, 8))
    ChatCompletion.model_validate(again)
    assert semantic(again) == semantic(answer)


def test_usage_is_sent_only_when_the_client_asked_for_it() -> None:
    without = [orjson.loads(e[6:]) for e in replay_sse(entry_of(TEXT), include_usage=False)[:-1]]
    assert all("usage" not in c and c["choices"] for c in without)
    asked = [orjson.loads(e[6:]) for e in replay_sse(entry_of(TEXT), include_usage=True)[:-1]]
    assert asked[-1]["choices"] == [] and asked[-1]["usage"] == USAGE
    assert all(c["usage"] is None for c in asked[:-1])
    assert reassembled(replay_sse(entry_of(TEXT), include_usage=False))["choices"] == TEXT["choices"]


def test_the_first_delta_gives_the_role_and_the_last_the_finish_reason() -> None:
    chunks = [orjson.loads(e[6:]) for e in replay_sse(entry_of(TEXT), False, "gpt-4o-mini")[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert {c["model"] for c in chunks} == {"gpt-4o-mini"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


@pytest.mark.parametrize("include_usage", [False, True])
def test_completions_json_to_sse_and_back_keeps_the_answer(include_usage: bool) -> None:
    events = replay_sse(entry_of(COMPLETION, COMPLETIONS), include_usage)
    for event in events[:-1]:
        Completion.model_validate_json(event[6:])
    assert semantic(reassembled(events, COMPLETIONS, Usage(2, 1))) == semantic(COMPLETION)


def test_embeddings_are_not_streamed() -> None:
    entry = CachedEntry("embeddings", b"{}", 1, 0, 0, True, 0.0, "r", "e")
    with pytest.raises(ValueError):
        replay_sse(entry, include_usage=False)


def openai_stream() -> list[bytes]:
    """A stream as OpenAI sends it: two choices interleaved, tool-call arguments in pieces, then usage."""
    base = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 7, "model": "gpt-4o", "usage": None}
    def piece(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return base | {"choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    return sse(
        piece(0, {"role": "assistant", "content": "", "refusal": None}), piece(1, {"role": "assistant", "content": ""}),
        piece(0, {"content": "Hel"}), piece(1, {"content": None, "tool_calls": [call]}), piece(0, {"content": "lo"}),
        piece(1, {"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]}),
        piece(1, {"tool_calls": [{"index": 0, "function": {"arguments": ': "Paris"}'}}]}),
        piece(0, {}, "stop"), piece(1, {}, "tool_calls"), base | {"choices": [], "usage": USAGE}, "[DONE]",
    )


def test_a_provider_stream_assembles_into_the_answer_a_json_request_gets() -> None:
    answer = reassembled(openai_stream())
    ChatCompletion.model_validate(answer)
    first, second = answer["choices"]
    assert first["message"] == {"role": "assistant", "content": "Hello", "refusal": None}
    assert second["message"]["tool_calls"] == [CALL]
    assert (first["finish_reason"], second["finish_reason"], answer["usage"]) == ("stop", "tool_calls", USAGE)
    assert (answer["id"], answer["model"], answer["object"]) == ("chatcmpl-9", "gpt-4o", "chat.completion")


def test_events_may_arrive_several_to_a_write() -> None:
    events = openai_stream()
    assert reassembled([b"".join(events[:5]), b"".join(events[5:])]) == reassembled(events)


def test_usage_stripped_from_the_relay_comes_from_the_stream_reading() -> None:
    events = [e for e in openai_stream() if b'"choices":[]' not in e]
    entry = entry_from_stream(events, endpoint=CHAT, request_id="r", stored_at=0.0, usage=Usage(20, 7, 8))
    assert entry is not None and (entry.prompt_tokens, entry.completion_tokens, entry.cached_tokens) == (20, 7, 8)
    assert orjson.loads(entry.body)["usage"]["total_tokens"] == 27


ERROR = {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": "upstream_error"}}


@pytest.mark.parametrize(
    "events",
    [
        openai_stream()[:-1],  # no [DONE]: cut
        openai_stream()[:-3] + openai_stream()[-2:],  # a choice never finished
        [*openai_stream()[:-1], error_event(stream_ended_early())],  # the gateway's in-band error, then [DONE]
        openai_stream()[:-1] + sse(ERROR, "[DONE]"),  # a provider's own error chunk
        [*openai_stream()[:-1], b'event: error\ndata: {"message": "x"}\n\n', b"data: [DONE]\n\n"],
        [e.replace(b'"tool_calls"}', b'"length"}') for e in openai_stream()],  # one of two choices cut by length
        [b"".join(openai_stream())[:-3]],  # [DONE] itself cut off
        sse("not json", "[DONE]"),
        sse("[DONE]"),
    ],
    # The error and length cases are otherwise finished streams: their flaw alone refuses them.
    ids=[
        "no-done", "unfinished-choice", "gateway-error", "error-chunk", "error-event", "length", "cut-done",
        "not-json", "empty",
    ],
)
def test_streams_cut_failed_or_truncated_are_not_cacheable(events: list[bytes]) -> None:
    assert entry_from_stream(events, endpoint=CHAT, request_id="r", stored_at=0.0) is None


def test_keep_alives_and_empty_events_do_not_matter() -> None:
    events = openai_stream()
    noisy = [b": keep-alive\n\n", *events[:3], b"data: \n\n", *events[3:]]
    assert read_chunks(noisy) == read_chunks(events)
    assert reassembled(noisy) == reassembled(events)


def test_an_embeddings_answer_with_known_usage_is_stored_as_it_is() -> None:
    body = b'{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.25]}], "model": "e"}'
    entry = entry_from_reply(
        body, endpoint="embeddings", request_id="r", stored_at=0.0, usage=Usage(4), model="text-embedding-3-small"
    )
    assert entry is not None and replay_json(entry) == body
    assert (entry.prompt_tokens, entry.model) == (4, "text-embedding-3-small")


def test_logprobs_travel_with_the_content() -> None:
    tokens = [{"token": t, "logprob": -0.5, "bytes": list(t.encode()), "top_logprobs": []} for t in ("Hi", "!")]
    answer = chat_answer({"content": "Hi!"})
    answer["choices"][0]["logprobs"] = {"content": tokens, "refusal": None}
    events = replay_sse(entry_of(answer), include_usage=False)
    for event in events[:-1]:
        ChatCompletionChunk.model_validate_json(event[6:])
    again = reassembled(events)
    assert again["choices"][0]["logprobs"]["content"] == tokens
    assert ChatCompletion.model_validate(again).choices[0].logprobs is not None
