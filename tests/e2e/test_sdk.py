"""The official openai SDK pointed at a running Netra, exactly as an application would use it."""

from __future__ import annotations

import base64
import struct

import httpx
import openai
import pytest

from tests.e2e.conftest import Deployment
from tests.fake_upstream_wire import WIRES

HELLO = "Hello from the fake upstream."
USER = [{"role": "user", "content": "hi"}]
# The streaming tests run once per wire layout of the provider (compact, spaced JSON, multi-line data, CRLF, CR, split
# writes): the fake writes each for the model `gpt-4o-mini-wire-<layout>` that netra.yaml serves as `wire-<layout>`.
EVERY_WIRE = pytest.mark.parametrize("model", [f"wire-{wire}" for wire in WIRES])
EVERY_CLAUDE_WIRE = pytest.mark.parametrize("model", [f"claude-wire-{wire}" for wire in WIRES])
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}},
}


def client(d: Deployment, key: str = "acme") -> openai.OpenAI:
    return d.client(key)


def test_chat_completion_passes_through(deployment: Deployment) -> None:
    raw = client(deployment).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    completion = raw.parse()
    assert completion.choices[0].message.content == HELLO
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-netra-model"] == "gpt-4o-mini"
    assert raw.headers["x-netra-cache"] == "bypass"


def test_client_request_id_is_echoed(deployment: Deployment) -> None:
    raw = client(deployment).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=USER, extra_headers={"x-request-id": "my-trace-42"}
    )
    assert raw.headers["x-request-id"] == "my-trace-42"


@EVERY_WIRE
def test_streaming_relays_chunks_without_usage_unless_asked(deployment: Deployment, model: str) -> None:
    chunks = list(client(deployment).chat.completions.create(model=model, messages=USER, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == HELLO
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "the usage-only chunk Netra asked for must not reach the client"


@EVERY_WIRE
def test_streaming_with_include_usage(deployment: Deployment, model: str) -> None:
    chunks = list(client(deployment).chat.completions.create(
        model=model, messages=USER, stream=True, stream_options={"include_usage": True}
    ))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8  # ⌈len(HELLO) / 4⌉, the fake's tokenizer
    assert [c.usage is not None for c in chunks].count(True) == 1, "the usage chunk exactly once"


def test_n_and_response_format_pass_through(deployment: Deployment) -> None:
    completion = client(deployment).chat.completions.create(
        model="gpt-4o-mini", messages=USER, n=2, response_format={"type": "json_object"}
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[0].message.content == '{"ok":true}'


def test_tool_calls(deployment: Deployment) -> None:
    completion = client(deployment).chat.completions.create(
        model="gpt-4o-mini", messages=USER, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    assert completion.choices[0].finish_reason == "tool_calls"


@EVERY_WIRE
def test_tool_calls_streamed(deployment: Deployment, model: str) -> None:
    stream = client(deployment).chat.completions.create(
        model=model, messages=USER, tools=[WEATHER_TOOL], stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    deltas = [tc for c in stream if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert "".join(d.function.arguments or "" for d in deltas if d.function) == '{"location":"Paris"}'


def test_anthropic_model_through_the_openai_sdk(deployment: Deployment) -> None:
    c = client(deployment)
    completion = c.chat.completions.create(model="claude-sonnet", messages=USER)
    assert completion.choices[0].message.content == HELLO
    assert completion.model == "claude-sonnet"
    chunks = list(c.chat.completions.create(model="claude-sonnet", messages=USER, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == HELLO


@EVERY_CLAUDE_WIRE
def test_anthropic_stream_in_every_layout(deployment: Deployment, model: str) -> None:
    chunks = list(client(deployment).chat.completions.create(
        model=model, messages=USER, stream=True, stream_options={"include_usage": True}
    ))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == HELLO
    assert [c.usage is not None for c in chunks].count(True) == 1 and chunks[-1].usage is not None


def test_anthropic_tools_translate(deployment: Deployment) -> None:
    completion = client(deployment).chat.completions.create(
        model="claude-sonnet", messages=USER, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    assert completion.choices[0].finish_reason == "tool_calls"


def test_azure_deployment(deployment: Deployment) -> None:
    completion = client(deployment).chat.completions.create(model="azure-4o", messages=USER)
    assert completion.choices[0].message.content == HELLO


def test_embeddings_float_and_base64(deployment: Deployment) -> None:
    c = client(deployment)
    floats = c.embeddings.create(model="text-embedding-3-small", input=["a", "b"], encoding_format="float")
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 8
    raw = c.embeddings.with_raw_response.create(model="text-embedding-3-small", input="a", encoding_format="base64")
    packed = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(packed))
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_completions_and_responses(deployment: Deployment) -> None:
    c = client(deployment)
    assert c.completions.create(model="gpt-4o-mini", prompt="Say hi").choices[0].text
    response = c.responses.create(model="gpt-4o-mini", input="hi")
    assert response.output_text


@EVERY_WIRE
def test_responses_stream(deployment: Deployment, model: str) -> None:
    events = list(client(deployment).responses.create(model=model, input="hi", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == HELLO
    assert events[-1].response.usage is not None and events[-1].response.usage.output_tokens == 8


def test_responses_stream_cut_short_raises_in_the_sdk(deployment: Deployment) -> None:
    stream = client(deployment).responses.create(model="cut-short", input="hi", stream=True)
    received = []
    with pytest.raises(openai.APIError) as err:
        for event in stream:
            received.append(event.type)
    assert received[0] == "response.created" and "response.completed" not in received
    assert "ended the stream early" in str(err.value)


def test_models_are_those_the_key_may_use(deployment: Deployment) -> None:
    everything = {m.id for m in client(deployment).models.list()}
    assert {"gpt-4o-mini", "claude-sonnet", "text-embedding-3-small"} <= everything
    assert {m.id for m in client(deployment, "mini-only").models.list()} == {"gpt-4o-mini"}
    assert client(deployment).models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client(deployment, "mini-only").models.retrieve("gpt-4o")


def test_authentication_error(deployment: Deployment) -> None:
    with pytest.raises(openai.AuthenticationError) as err:
        client(deployment, "nk-not-a-real-key-at-all").chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert err.value.code == "invalid_api_key"
    assert "nk-not-a-real-key" not in str(err.value.body)


def test_not_found_for_unknown_or_forbidden_model(deployment: Deployment) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client(deployment).chat.completions.create(model="gpt-9", messages=USER)
    assert err.value.code == "model_not_found" and err.value.param == "model"  # type: ignore[attr-defined]
    with pytest.raises(openai.NotFoundError):
        client(deployment, "mini-only").chat.completions.create(model="gpt-4o", messages=USER)


def test_bad_request_from_netra_and_from_upstream(deployment: Deployment) -> None:
    with pytest.raises(openai.BadRequestError) as ours:
        client(deployment).chat.completions.create(model="gpt-4o-mini", messages="not a list")  # type: ignore[arg-type]
    assert ours.value.code == "invalid_type" and ours.value.param == "messages"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as theirs:
        client(deployment).chat.completions.create(model="broken-400", messages=USER)
    assert theirs.value.code == "invalid_value" and theirs.value.param == "messages"  # type: ignore[attr-defined]


def test_upstream_5xx_is_a_502(deployment: Deployment) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        client(deployment).chat.completions.create(model="broken-500", messages=USER)
    assert err.value.status_code == 502
    assert err.value.code == "upstream_error"  # type: ignore[attr-defined]


def test_failure_mid_stream_is_an_in_band_error(deployment: Deployment) -> None:
    stream = client(deployment).chat.completions.create(model="midstream", messages=USER, stream=True)
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            received.append(chunk)
    assert received, "the chunks before the failure reach the client"
    assert "ended the stream early" in str(err.value) or "failed" in str(err.value)


def test_rate_limit_error_after_the_tier_limit(deployment: Deployment) -> None:
    c = client(deployment, "tiny")
    headers = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER).headers
    assert headers["x-ratelimit-limit-requests"] == "100"
    remaining = int(headers["x-ratelimit-remaining-requests"])
    for _ in range(remaining):  # billable calls count; model listings do not
        c.chat.completions.create(model="gpt-4o-mini", messages=USER)
    with pytest.raises(openai.RateLimitError) as err:
        c.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert err.value.code == "rate_limit_exceeded"  # type: ignore[attr-defined]
    assert int(err.value.response.headers["retry-after"]) > 0


def test_raw_http_errors_are_openai_shaped(deployment: Deployment) -> None:
    base = deployment.netra.url
    auth = {"authorization": f"Bearer {deployment.keys['acme']}"}
    bad_json = httpx.post(f"{base}/chat/completions", content=b"{nope", headers=auth)
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "invalid_json"
    big = httpx.post(f"{base}/chat/completions", content=b"x" * (5 * 1024 * 1024), headers=auth)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    unknown = httpx.get(f"{base}/nothing-here", headers=auth)
    assert unknown.status_code == 404 and set(unknown.json()["error"]) == {"message", "type", "param", "code"}
    assert unknown.headers["x-request-id"]
