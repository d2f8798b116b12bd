"""Hostile and malformed request bodies through the whole gateway: a 400 naming the field, before any provider call."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.fake_upstream_behaviour import DEFAULT_REPLY
from tests.integration.harness import MESSAGES, Gateway
from tests.unit.helpers import assert_envelope

CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def turn(**fields: Any) -> list[dict[str, Any]]:
    """A conversation whose last message is an assistant turn with `fields`."""
    return [*MESSAGES, {"role": "assistant", **fields}]


async def post(gateway: Gateway, endpoint: str, body: dict[str, Any]) -> Any:
    return await gateway.http.post(f"/v1/{endpoint}", json=body, headers=gateway.auth())


def assert_refused(gateway: Gateway, response: Any, param: str, code: str = "invalid_type") -> None:
    """A 400 OpenAI envelope naming `param`, and nothing sent to the provider."""
    assert response.status_code == 400, (param, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert_envelope(response.json(), type="invalid_request_error", code=code, param=param)
    assert gateway.fake.requests == [], param


# The gateway takes a couple of seconds to start, so each test walks a whole table against one gateway.

# --- item 7: wrong-typed known fields ---------------------------------------------------------------------------------

WRONG_TYPES: list[tuple[str, Any]] = [
    ("temperature", "0.7"), ("temperature", True), ("top_p", "1"), ("max_tokens", "100"), ("max_tokens", 1.5),
    ("max_completion_tokens", [100]), ("n", "2"), ("seed", 4.2), ("presence_penalty", "0"),
    ("frequency_penalty", {"v": 0}), ("stop", 3), ("logprobs", "yes"), ("top_logprobs", "2"), ("user", 42),
    ("tools", "get_weather"), ("tool_choice", 1), ("response_format", "json_object"),
]


async def test_a_wrong_typed_field_is_refused_before_the_provider(gateway: Gateway) -> None:
    for field, value in WRONG_TYPES:
        response = await gateway.chat(**{field: value})
        assert_refused(gateway, response, field)
        assert f"Invalid type for '{field}'" in response.json()["error"]["message"]


ENDPOINT_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("completions", {"model": "gpt-4o-mini", "prompt": "Hi", "logprobs": True}, "logprobs"),
    ("completions", {"model": "gpt-4o-mini", "prompt": "Hi", "temperature": "hot"}, "temperature"),
    ("embeddings", {"model": "text-embedding-3-small", "input": "Hi", "dimensions": "256"}, "dimensions"),
    ("responses", {"model": "gpt-4o-mini", "input": "Hi", "max_output_tokens": "100"}, "max_output_tokens"),
    ("responses", {"model": "gpt-4o-mini", "input": "Hi", "tools": [{"name": "f"}]}, "tools[0].type"),
]


async def test_each_endpoint_checks_its_own_fields(gateway: Gateway) -> None:
    for endpoint, body, param in ENDPOINT_FIELDS:
        code = "missing_required_parameter" if param.endswith(".type") else "invalid_type"
        assert_refused(gateway, await post(gateway, endpoint, body), param, code)


MALFORMED_MESSAGES: list[tuple[list[Any], str]] = [
    (["Hello"], "messages[0]"),
    ([{"role": "user", "content": 5}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "text", "text": None}]}], "messages[0].content[0].text"),
    (turn(tool_calls=5), "messages[1].tool_calls"),
    (turn(tool_calls=[{**CALL, "function": {"name": "f", "arguments": {"city": "Paris"}}}]),
     "messages[1].tool_calls[0].function.arguments"),
    ([*turn(tool_calls=[CALL]), {"role": "tool", "tool_call_id": 1, "content": "18C"}], "messages[2].tool_call_id"),
]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude"])
async def test_malformed_messages_are_refused_whatever_the_provider(gateway: Gateway, model: str) -> None:
    for messages, param in MALFORMED_MESSAGES:
        assert_refused(gateway, await gateway.chat(model=model, messages=messages), param)


async def test_unknown_fields_are_still_forwarded_untouched(gateway: Gateway) -> None:
    odd = {"foo": {"bar": [1, None, "x"]}, "top_k": "many", "max_output_tokens": "x", "temperature": 0.5}
    response = await gateway.chat(**odd)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == DEFAULT_REPLY
    (received,) = gateway.fake.requests
    assert received.json == {"model": "gpt-4o-mini", "messages": MESSAGES, **odd}


async def test_nulls_the_spec_allows_are_forwarded(gateway: Gateway) -> None:
    nulls = {"temperature": None, "max_tokens": None, "stop": None, "seed": None, "logprobs": None}
    response = await gateway.chat(**nulls)
    assert response.status_code == 200
    (received,) = gateway.fake.requests
    assert received.json == {"model": "gpt-4o-mini", "messages": MESSAGES, **nulls}


# --- item 8: the Anthropic translator never crashes -------------------------------------------------------------------

# Shapes OpenAI's types allow but Anthropic's translation cannot use: only the translator refuses these.
UNTRANSLATABLE: list[tuple[list[Any], str, str]] = [
    (turn(tool_calls=[{"id": "call_1", "type": "function"}]), "messages[1].tool_calls[0].function",
     "missing_required_parameter"),
    (turn(tool_calls=[{"type": "function", "function": CALL["function"]}]), "messages[1].tool_calls[0].id",
     "missing_required_parameter"),
    (turn(tool_calls=[{**CALL, "function": {"name": "f", "arguments": "{not json"}}]),
     "messages[1].tool_calls[0].function.arguments", "invalid_value"),
    (turn(tool_calls=[{"id": "c", "type": "custom", "custom": {"name": "g", "input": "x"}}]),
     "messages[1].tool_calls[0].type", "invalid_value"),
    (turn(content=[{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]), "messages[1].content[0].type",
     "invalid_value"),
    ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}], "messages[0].content[0].type",
     "invalid_value"),
    ([*turn(tool_calls=[CALL]), {"role": "tool", "content": "18C"}], "messages[2].tool_call_id",
     "missing_required_parameter"),
    ([{"role": "user"}], "messages[0].content", "missing_required_parameter"),
    ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role", "invalid_value"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}],
     "messages[0].content[0].image_url.url", "invalid_value"),
]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_malformed_turn_for_anthropic_is_a_400_naming_the_field(gateway: Gateway, stream: bool) -> None:
    for messages, param, code in UNTRANSLATABLE:
        response = await gateway.chat(model="claude", messages=messages, stream=stream)
        assert_refused(gateway, response, param, code)


UNSUPPORTED: list[tuple[dict[str, Any], str, str]] = [
    ({"tools": [{"type": "custom", "custom": {"name": "g"}}]}, "tools[0].type", "invalid_value"),
    ({"tools": [TOOL], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice.type",
     "invalid_value"),
    ({"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    ({"n": 2}, "n", "invalid_value"),
    ({"response_format": {"type": "json_object"}}, "response_format", "unsupported_parameter"),
]


async def test_unsupported_anthropic_options_are_a_400_naming_the_field(gateway: Gateway) -> None:
    for fields, param, code in UNSUPPORTED:
        assert_refused(gateway, await gateway.chat(model="claude", **fields), param, code)


HOSTILE = [None, 5, 1.5, True, "", "x", [], [5], [None], [{}], {}, {"type": 5}]
PLACES = [
    lambda v: {"messages": [v]},
    lambda v: {"messages": [{"role": "user", "content": v}]},
    lambda v: {"messages": [{"role": "user", "content": [v]}]},
    lambda v: {"messages": turn(content=v)},
    lambda v: {"messages": turn(tool_calls=v)},
    lambda v: {"messages": turn(tool_calls=[v])},
    lambda v: {"messages": turn(tool_calls=[{**CALL, "function": v}])},
    lambda v: {"messages": turn(tool_calls=[{**CALL, "function": {"name": "f", "arguments": v}}])},
    lambda v: {"messages": [*turn(tool_calls=[CALL]), {"role": "tool", "tool_call_id": v, "content": "x"}]},
    lambda v: {"tools": [v]},
    lambda v: {"tools": [TOOL], "tool_choice": v},
]


async def test_no_shape_is_a_server_error_for_anthropic(gateway: Gateway) -> None:
    for place, value in itertools.product(PLACES, HOSTILE):
        gateway.fake.reset()
        response = await gateway.chat(model="claude", **place(value))
        assert response.status_code in (200, 400), (place(value), response.status_code, response.text)
        if response.status_code == 400:
            assert response.json()["error"]["param"], (place(value), response.text)
            assert gateway.fake.requests == []
