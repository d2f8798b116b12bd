"""OpenAI chat completions ⇄ Anthropic Messages: request, response and error translation."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageFunctionToolCall

from core.errors import InvalidParameter, NetraError, ServiceUnavailable, UpstreamFailed, UpstreamRejected
from core.usage import Usage
from gateway.providers.anthropic_translate import (
    DEFAULT_MAX_TOKENS,
    error_from_anthropic,
    from_messages_response,
    to_messages_request,
    usage_from_anthropic,
)
from tests.unit.helpers import assert_envelope

UPSTREAM = "claude-sonnet-4-5-20250929"
HI = {"role": "user", "content": "Hi"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {"type": "function", "function": {"name": "now"}},
]


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("messages", [HI])
    return to_messages_request(body, UPSTREAM)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


# ---- request: system prompt -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "system"),
    [
        ([{"role": "system", "content": "Be brief."}, HI], "Be brief."),
        ([{"role": "developer", "content": "Be brief."}, HI], "Be brief."),
        ([{"role": "system", "content": [text("Be brief."), text("Use French.")]}, HI], "Be brief.\n\nUse French."),
        (
            [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Use French."}, HI],
            "Be brief.\n\nUse French.",
        ),
        (
            [
                {"role": "system", "content": "Rules."},
                {"role": "system", "content": [{**text("Big doc"), "cache_control": {"type": "ephemeral"}}]},
                HI,
            ],
            [text("Rules."), {**text("Big doc"), "cache_control": {"type": "ephemeral"}}],
        ),
        ([HI], None),
    ],
    ids=["string", "developer", "parts", "system+developer", "cache_control-kept-as-blocks", "none"],
)
def test_system_prompt(messages: list[dict[str, Any]], system: Any) -> None:
    request = translate(messages=messages)
    assert request.get("system") == system
    assert request["messages"] == [{"role": "user", "content": [text("Hi")]}]


def test_model_and_defaults() -> None:
    request = translate(model="gpt-4o")
    assert request == {"model": UPSTREAM, "messages": [{"role": "user", "content": [text("Hi")]}],
                       "max_tokens": DEFAULT_MAX_TOKENS}


# ---- request: turns -----------------------------------------------------------------------------------------------


def test_multi_turn_alternation_and_merging() -> None:
    request = translate(
        messages=[
            {"role": "user", "content": "one"},
            {"role": "user", "content": [text("two")]},
            {"role": "assistant", "content": "three"},
            {"role": "assistant", "content": [text("four")]},
            {"role": "user", "content": "five"},
        ]
    )
    assert request["messages"] == [
        {"role": "user", "content": [text("one"), text("two")]},
        {"role": "assistant", "content": [text("three"), text("four")]},
        {"role": "user", "content": [text("five")]},
    ]


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://example.com/cat.png", {"type": "url", "url": "https://example.com/cat.png"}),
        ("http://example.com/cat.png", {"type": "url", "url": "http://example.com/cat.png"}),
        ("data:image/png;base64,iVBORw0KGgo=", {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}),
        ("data:image/jpeg;base64,/9j/4AAQ", {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}),
    ],
)
def test_images(url: str, source: dict[str, Any]) -> None:
    part = {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
    request = translate(messages=[{"role": "user", "content": [text("What is this?"), part]}])
    assert request["messages"][0]["content"] == [text("What is this?"), {"type": "image", "source": source}]


def test_tool_calls_and_results_round_trip() -> None:
    request = translate(
        messages=[
            {"role": "user", "content": "Weather in Paris and the time?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "toolu_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C, cloudy"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [text("12:00")]},
            {"role": "user", "content": "Thanks, summarise."},
        ],
        tools=TOOLS,
    )
    assert request["messages"] == [
        {"role": "user", "content": [text("Weather in Paris and the time?")]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C, cloudy"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [text("12:00")]},
                text("Thanks, summarise."),
            ],
        },
    ]


def test_tool_results_come_before_text_in_a_merged_user_turn() -> None:
    request = translate(
        messages=[
            HI,
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
            {"role": "user", "content": "also"},
            {"role": "tool", "tool_call_id": "t1", "content": "noon"},
        ]
    )
    assert [block["type"] for block in request["messages"][2]["content"]] == ["tool_result", "text"]


# ---- request: tools -----------------------------------------------------------------------------------------------


def test_tools() -> None:
    request = translate(tools=TOOLS)
    assert request["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in request


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        ({"type": "function", "function": {"name": "now"}}, None, {"type": "tool", "name": "now"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ({"type": "function", "function": {"name": "now"}}, False,
         {"type": "tool", "name": "now", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, True, None),
        (None, None, None),
    ],
)
def test_tool_choice(tool_choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    body: dict[str, Any] = {"tools": TOOLS}
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    assert translate(**body).get("tool_choice") == expected


def test_tool_choice_without_tools_is_dropped() -> None:
    assert "tool_choice" not in translate(tool_choice="required", parallel_tool_calls=False)


# ---- request: scalar fields ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_tokens": 100}, {"max_tokens": 100}),
        ({"max_completion_tokens": 200}, {"max_tokens": 200}),
        ({"max_completion_tokens": 200, "max_tokens": 100}, {"max_tokens": 200}),
        ({"max_tokens": None}, {"max_tokens": DEFAULT_MAX_TOKENS}),
        ({"stop": "END"}, {"stop_sequences": ["END"]}),
        ({"stop": ["END", "STOP"]}, {"stop_sequences": ["END", "STOP"]}),
        ({"temperature": 0.2, "top_p": 0.9}, {"temperature": 0.2, "top_p": 0.9}),
        ({"stream": True}, {"stream": True}),
        ({"user": "user-42"}, {"metadata": {"user_id": "user-42"}}),
        ({"top_k": 5}, {"top_k": 5}),
        ({"n": 1}, {}),
        ({"response_format": {"type": "text"}}, {}),
    ],
)
def test_scalar_fields(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    request = translate(**fields)
    assert {key: request[key] for key in expected} == expected
    assert "n" not in request and "response_format" not in request


def test_openai_only_fields_are_dropped() -> None:
    request = translate(
        stream=True,
        stream_options={"include_usage": True},
        seed=7,
        logprobs=True,
        top_logprobs=2,
        frequency_penalty=0.5,
        presence_penalty=0.5,
        logit_bias={"1": 2},
        store=True,
        metadata={"team": "a"},
        reasoning_effort="low",
        service_tier="auto",
    )
    assert set(request) == {"model", "messages", "max_tokens", "stream"}


# ---- request: rejected inputs ---------------------------------------------------------------------------------------


def call(**fields: Any) -> dict[str, Any]:
    return {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}, **fields}


def assistant(**fields: Any) -> dict[str, Any]:
    return {"role": "assistant", **fields}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"n": 2, "messages": [HI]}, "n", "invalid_value"),
        ({"response_format": {"type": "json_object"}, "messages": [HI]}, "response_format", "unsupported_parameter"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, "messages": [HI]},
         "response_format", "unsupported_parameter"),
        ({"response_format": "text", "messages": [HI]}, "response_format", "unsupported_parameter"),
        ({"functions": [{"name": "f"}], "messages": [HI]}, "functions", "unsupported_parameter"),
        ({}, "messages", "missing_required_parameter"),
        ({"messages": "hi"}, "messages", "invalid_type"),
        ({"messages": 5}, "messages", "invalid_type"),
        ({"messages": ["hi"]}, "messages[0]", "invalid_type"),
        ({"messages": [HI, None]}, "messages[1]", "invalid_type"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role", "invalid_value"),
        ({"messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter"),
        ({"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role", "invalid_type"),
        ({"messages": [{"role": {"a": 1}, "content": "x"}]}, "messages[0].role", "invalid_type"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
        ({"messages": [{"role": "user", "content": {"type": "text", "text": "x"}}]}, "messages[0].content",
         "invalid_type"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
        ({"messages": [{"role": "system", "content": None}, HI]}, "messages[0].content", "missing_required_parameter"),
        ({"messages": [{"role": "user", "content": ["hi"]}]}, "messages[0].content[0]", "invalid_type"),
        ({"messages": [{"role": "user", "content": [text("a"), 5]}]}, "messages[0].content[1]", "invalid_type"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0].type",
         "missing_required_parameter"),
        ({"messages": [{"role": "user", "content": [{"type": ["text"], "text": "x"}]}]},
         "messages[0].content[0].type", "invalid_type"),
        ({"messages": [{"role": "user", "content": [{"type": {"x": 1}}]}]}, "messages[0].content[0].type",
         "invalid_type"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages[0].content[0].text",
         "invalid_type"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text",
         "missing_required_parameter"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
         "messages[0].content[0].type", "invalid_value"),
        ({"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]}, "messages[0].content[0].type",
         "invalid_value"),
        ({"messages": [{"role": "user", "content": [image("ftp://x/y.png")]}]}, "messages[0].content[0].image_url.url",
         "invalid_value"),
        ({"messages": [{"role": "user", "content": [image("data:image/png,abc")]}]},
         "messages[0].content[0].image_url.url", "invalid_value"),
        ({"messages": [{"role": "user", "content": [image("data:text/plain;base64,YQ==")]}]},
         "messages[0].content[0].image_url.url", "invalid_value"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0].image_url",
         "missing_required_parameter"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
         "messages[0].content[0].image_url.url", "missing_required_parameter"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}]},
         "messages[0].content[0].image_url.url", "invalid_type"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]},
         "messages[0].content[0].image_url", "invalid_type"),
        ({"messages": [{"role": "system", "content": [image("https://x/y.png")]}]}, "messages[0].content[0].type",
         "invalid_value"),
        ({"messages": [HI, assistant(content=[image("https://x/y.png")])]}, "messages[1].content[0].type",
         "invalid_value"),
        ({"messages": [HI, assistant(content=5)]}, "messages[1].content", "invalid_type"),
        ({"messages": [HI, assistant(content=[{"type": "refusal", "refusal": None}])]},
         "messages[1].content[0].refusal", "missing_required_parameter"),
        ({"messages": [HI, assistant(tool_calls=5)]}, "messages[1].tool_calls", "invalid_type"),
        ({"messages": [HI, assistant(tool_calls="f")]}, "messages[1].tool_calls", "invalid_type"),
        ({"messages": [HI, assistant(tool_calls={"id": "x"})]}, "messages[1].tool_calls", "invalid_type"),
        ({"messages": [HI, assistant(tool_calls=[5])]}, "messages[1].tool_calls[0]", "invalid_type"),
        ({"messages": [HI, assistant(tool_calls=[call(), None])]}, "messages[1].tool_calls[1]", "invalid_type"),
        ({"messages": [HI, assistant(tool_calls=[{"id": "t", "type": "function"}])]},
         "messages[1].tool_calls[0].function", "missing_required_parameter"),
        ({"messages": [HI, assistant(tool_calls=[call(function="f")])]}, "messages[1].tool_calls[0].function",
         "invalid_type"),
        ({"messages": [HI, assistant(tool_calls=[call(function=["f"])])]}, "messages[1].tool_calls[0].function",
         "invalid_type"),
        ({"messages": [HI, assistant(tool_calls=[call(function={"arguments": "{}"})])]},
         "messages[1].tool_calls[0].function.name", "missing_required_parameter"),
        ({"messages": [HI, assistant(tool_calls=[call(function={"name": 5})])]},
         "messages[1].tool_calls[0].function.name", "invalid_type"),
        ({"messages": [HI, assistant(tool_calls=[call(function={"name": "f", "arguments": {"a": 1}})])]},
         "messages[1].tool_calls[0].function.arguments", "invalid_type"),
        ({"messages": [HI, assistant(tool_calls=[call(function={"name": "f", "arguments": 5})])]},
         "messages[1].tool_calls[0].function.arguments", "invalid_type"),
        ({"messages": [HI, assistant(tool_calls=[call(function={"name": "f", "arguments": "{not json"})])]},
         "messages[1].tool_calls[0].function.arguments", "invalid_value"),
        ({"messages": [HI, assistant(tool_calls=[call(function={"name": "f", "arguments": "[1]"})])]},
         "messages[1].tool_calls[0].function.arguments", "invalid_value"),
        ({"messages": [HI, assistant(tool_calls=[call(id=None)])]}, "messages[1].tool_calls[0].id",
         "missing_required_parameter"),
        ({"messages": [HI, assistant(tool_calls=[call(id=7)])]}, "messages[1].tool_calls[0].id", "invalid_type"),
        ({"messages": [HI, assistant(tool_calls=[call(type="custom", custom={"name": "g", "input": "x"})])]},
         "messages[1].tool_calls[0].type", "invalid_value"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", "missing_required_parameter"),
        ({"messages": [{"role": "tool", "tool_call_id": 5, "content": "x"}]}, "messages[0].tool_call_id",
         "invalid_type"),
        ({"messages": [{"role": "tool", "tool_call_id": "t", "content": 5}]}, "messages[0].content", "invalid_type"),
        ({"messages": [{"role": "tool", "tool_call_id": "t", "content": [{"type": "audio"}]}]},
         "messages[0].content[0].type", "invalid_value"),
        ({"messages": [HI], "max_tokens": "many"}, "max_tokens", "invalid_type"),
        ({"messages": [HI], "max_tokens": True}, "max_tokens", "invalid_type"),
        ({"messages": [HI], "max_completion_tokens": 1.5}, "max_completion_tokens", "invalid_type"),
        ({"messages": [HI], "temperature": "hot"}, "temperature", "invalid_type"),
        ({"messages": [HI], "top_p": False}, "top_p", "invalid_type"),
        ({"messages": [HI], "stop": 3}, "stop", "invalid_type"),
        ({"messages": [HI], "stop": {"a": 1}}, "stop", "invalid_type"),
        ({"messages": [HI], "stop": ["a", 3]}, "stop[1]", "invalid_type"),
        ({"messages": [HI], "user": 5}, "user", "invalid_type"),
        ({"messages": [HI], "tools": 5}, "tools", "invalid_type"),
        ({"messages": [HI], "tools": "search"}, "tools", "invalid_type"),
        ({"messages": [HI], "tools": {"type": "function"}}, "tools", "invalid_type"),
        ({"messages": [HI], "tools": ["f"]}, "tools[0]", "invalid_type"),
        ({"messages": [HI], "tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type", "invalid_value"),
        ({"messages": [HI], "tools": [TOOLS[0], {"type": "function"}]}, "tools[1].function",
         "missing_required_parameter"),
        ({"messages": [HI], "tools": [{"type": "function", "function": "f"}]}, "tools[0].function", "invalid_type"),
        ({"messages": [HI], "tools": [{"type": "function", "function": {"name": 1}}]}, "tools[0].function.name",
         "invalid_type"),
        ({"messages": [HI], "tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
         "tools[0].function.parameters", "invalid_type"),
        ({"messages": [HI], "tools": [{"type": "function", "function": {"name": "f", "description": ["d"]}}]},
         "tools[0].function.description", "invalid_type"),
        ({"messages": [HI], "tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
        ({"messages": [HI], "tools": TOOLS, "tool_choice": 5}, "tool_choice", "invalid_type"),
        ({"messages": [HI], "tools": TOOLS, "tool_choice": ["auto"]}, "tool_choice", "invalid_type"),
        ({"messages": [HI], "tools": TOOLS, "tool_choice": {"type": "function"}}, "tool_choice.function",
         "missing_required_parameter"),
        ({"messages": [HI], "tools": TOOLS, "tool_choice": {"type": "function", "function": "now"}},
         "tool_choice.function", "invalid_type"),
        ({"messages": [HI], "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": 1}}},
         "tool_choice.function.name", "invalid_type"),
        ({"messages": [HI], "tools": TOOLS, "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}},
         "tool_choice.type", "invalid_value"),
        ({"messages": [HI], "tools": TOOLS, "parallel_tool_calls": "no"}, "parallel_tool_calls", "invalid_type"),
    ],
)
def test_rejected(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        to_messages_request(body, UPSTREAM)
    assert (caught.value.param, caught.value.code, caught.value.status_code) == (param, code, 400)
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code=code, param=param)


HOSTILE = [None, 5, -1.5, True, "", "x", "{}", [], [5], ["x"], [None], [{}], {}, {"a": 1}, {"type": 5},
           {"type": "text"}, {"name": 5}, [[]], [{"type": "function"}]]
# Every place the translator reads something from, with a well-formed body around it.
TEMPLATES: list[tuple[str, dict[str, Any]]] = [
    ("messages", {"messages": "*"}),
    ("messages[0]", {"messages": ["*"]}),
    ("messages[0].role", {"messages": [{"role": "*", "content": "x"}]}),
    ("messages[0].content", {"messages": [{"role": "user", "content": "*"}]}),
    ("messages[0].content", {"messages": [{"role": "system", "content": "*"}, HI]}),
    ("messages[0].content[0]", {"messages": [{"role": "user", "content": ["*"]}]}),
    ("messages[0].content[0].type", {"messages": [{"role": "user", "content": [{"type": "*", "text": "x"}]}]}),
    ("messages[0].content[0].text", {"messages": [{"role": "user", "content": [{"type": "text", "text": "*"}]}]}),
    ("messages[0].content[0].image_url", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": "*"}]}]}),
    ("messages[0].content[0].image_url.url", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "*"}}]}]}),
    ("messages[1].content", {"messages": [HI, {"role": "assistant", "content": "*"}]}),
    ("messages[1].content[0]", {"messages": [HI, {"role": "assistant", "content": ["*"]}]}),
    ("messages[1].tool_calls", {"messages": [HI, {"role": "assistant", "tool_calls": "*"}]}),
    ("messages[1].tool_calls[0]", {"messages": [HI, {"role": "assistant", "tool_calls": ["*"]}]}),
    ("messages[1].tool_calls[0].id", {"messages": [HI, {"role": "assistant", "tool_calls": [call(id="*")]}]}),
    ("messages[1].tool_calls[0].type", {"messages": [HI, {"role": "assistant", "tool_calls": [call(type="*")]}]}),
    ("messages[1].tool_calls[0].function", {"messages": [HI, {"role": "assistant", "tool_calls": [
        call(function="*")]}]}),
    ("messages[1].tool_calls[0].function.name", {"messages": [HI, {"role": "assistant", "tool_calls": [
        call(function={"name": "*", "arguments": "{}"})]}]}),
    ("messages[1].tool_calls[0].function.arguments", {"messages": [HI, {"role": "assistant", "tool_calls": [
        call(function={"name": "f", "arguments": "*"})]}]}),
    ("messages[0].tool_call_id", {"messages": [{"role": "tool", "tool_call_id": "*", "content": "x"}]}),
    ("messages[0].content", {"messages": [{"role": "tool", "tool_call_id": "t", "content": "*"}]}),
    ("max_tokens", {"messages": [HI], "max_tokens": "*"}),
    ("temperature", {"messages": [HI], "temperature": "*"}),
    ("stop", {"messages": [HI], "stop": "*"}),
    ("user", {"messages": [HI], "user": "*"}),
    ("n", {"messages": [HI], "n": "*"}),
    ("response_format", {"messages": [HI], "response_format": "*"}),
    ("tools", {"messages": [HI], "tools": "*"}),
    ("tools[0]", {"messages": [HI], "tools": ["*"]}),
    ("tools[0].function", {"messages": [HI], "tools": [{"type": "function", "function": "*"}]}),
    ("tools[0].function.parameters", {"messages": [HI], "tools": [
        {"type": "function", "function": {"name": "f", "parameters": "*"}}]}),
    ("tool_choice", {"messages": [HI], "tools": TOOLS, "tool_choice": "*"}),
    ("parallel_tool_calls", {"messages": [HI], "tools": TOOLS, "parallel_tool_calls": "*"}),
]


def substitute(template: Any, value: Any) -> Any:
    if template == "*":
        return value
    if isinstance(template, dict):
        return {key: substitute(item, value) for key, item in template.items()}
    if isinstance(template, list):
        return [substitute(item, value) for item in template]
    return template


@pytest.mark.parametrize(("where", "template"), TEMPLATES, ids=[where for where, _ in TEMPLATES])
def test_no_shape_crashes_the_translator(where: str, template: dict[str, Any]) -> None:
    # Whatever is put at a place the translator reads, the result is a request or a 400 about that place.
    for value in HOSTILE:
        try:
            request = to_messages_request(substitute(template, value), UPSTREAM)
        except InvalidParameter as exc:
            assert exc.status_code == 400
            assert exc.param is not None and exc.param.startswith(where.split(".")[0].split("[")[0]), (value, exc)
            assert exc.param.startswith(where) or where.startswith(exc.param), (value, exc.param)
        else:
            assert orjson.loads(orjson.dumps(request))["model"] == UPSTREAM


def test_n_rejection_says_why() -> None:
    with pytest.raises(InvalidParameter, match="multiple choices"):
        translate(n=3)


# ---- response -----------------------------------------------------------------------------------------------------


def message(content: list[dict[str, Any]], stop_reason: str | None = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": UPSTREAM,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 6, **usage},
    }


def test_text_response() -> None:
    completion, usage = from_messages_response(message([text("Hello"), text(" there")]), "gpt-4o", 1_700_000_000)
    parsed = ChatCompletion.model_validate(completion)
    assert parsed.id == "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL"
    assert (parsed.object, parsed.created, parsed.model) == ("chat.completion", 1_700_000_000, "gpt-4o")
    choice = parsed.choices[0]
    assert (choice.index, choice.finish_reason, choice.logprobs) == (0, "stop", None)
    assert (choice.message.role, choice.message.content) == ("assistant", "Hello there")
    assert choice.message.tool_calls is None
    assert "tool_calls" not in completion["choices"][0]["message"]
    assert usage == Usage(prompt_tokens=12, completion_tokens=6)


@pytest.mark.parametrize("content", [5, "text", {"type": "text", "text": "x"}, None, [5, None, "x"]])
def test_a_malformed_response_content_reads_as_empty(content: Any) -> None:
    completion, usage = from_messages_response({**message([]), "content": content}, "gpt-4o", 1_700_000_000)
    assert completion["choices"][0]["message"]["content"] is None
    assert usage == Usage(prompt_tokens=12, completion_tokens=6)


def test_tool_use_response() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}},
        {"type": "tool_use", "id": "toolu_01B", "name": "now", "input": {}},
    ]
    completion, _ = from_messages_response(message(blocks, "tool_use"), "gpt-4o", 1)
    parsed = ChatCompletion.model_validate(completion)
    reply = parsed.choices[0].message
    assert parsed.choices[0].finish_reason == "tool_calls"
    assert reply.content is None
    assert reply.tool_calls is not None
    functions = [call for call in reply.tool_calls if isinstance(call, ChatCompletionMessageFunctionToolCall)]
    assert [(call.id, call.type, call.function.name, call.function.arguments) for call in functions] == [
        ("toolu_01A", "function", "get_weather", '{"city":"Paris","unit":"c"}'),
        ("toolu_01B", "function", "now", "{}"),
    ]


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "stop"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
        (None, "stop"),
    ],
)
def test_stop_reasons(stop_reason: str | None, finish_reason: str) -> None:
    completion, _ = from_messages_response(message([text("x")], stop_reason), "m", 1)
    assert ChatCompletion.model_validate(completion).choices[0].finish_reason == finish_reason


def test_usage_with_prompt_cache() -> None:
    raw = message([text("x")], input_tokens=50, cache_read_input_tokens=100, cache_creation_input_tokens=20,
                  output_tokens=30)
    completion, usage = from_messages_response(raw, "m", 1)
    parsed = ChatCompletion.model_validate(completion).usage
    assert parsed is not None
    assert (parsed.prompt_tokens, parsed.completion_tokens, parsed.total_tokens) == (170, 30, 200)
    assert parsed.prompt_tokens_details is not None and parsed.prompt_tokens_details.cached_tokens == 100
    assert parsed.completion_tokens_details is not None and parsed.completion_tokens_details.reasoning_tokens == 0
    assert usage == Usage(prompt_tokens=170, completion_tokens=30, cached_tokens=100, cache_write_tokens=20)
    assert usage.uncached_prompt_tokens == 50


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, Usage(reported=False)),
        ({}, Usage()),
        ({"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": None}, Usage(5, 2)),
        ({"input_tokens": "garbage", "output_tokens": 2}, Usage(0, 2)),
    ],
)
def test_usage_from_anthropic(raw: dict[str, Any] | None, expected: Usage) -> None:
    assert usage_from_anthropic(raw) == expected


# ---- errors ---------------------------------------------------------------------------------------------------------


def envelope(etype: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}, "request_id": "req_1"})


@pytest.mark.parametrize(
    ("status", "body", "cls", "http", "code", "etype"),
    [
        (400, envelope("invalid_request_error", "messages: roles must alternate"), UpstreamRejected, 400, None,
         "invalid_request_error"),
        (404, envelope("not_found_error", "model: claude-x"), UpstreamRejected, 404, None, "invalid_request_error"),
        (413, envelope("request_too_large", "Request exceeds the maximum size"), UpstreamRejected, 413, None,
         "invalid_request_error"),
        (422, b"not json at all", UpstreamRejected, 422, None, "invalid_request_error"),
        (401, envelope("authentication_error", "invalid x-api-key"), UpstreamFailed, 502, "upstream_auth_error",
         "server_error"),
        (403, envelope("permission_error", "no access"), UpstreamFailed, 502, "upstream_auth_error", "server_error"),
        (429, envelope("rate_limit_error", "slow down"), ServiceUnavailable, 503, "upstream_overloaded",
         "server_error"),
        (529, envelope("overloaded_error", "Overloaded"), ServiceUnavailable, 503, "upstream_overloaded",
         "server_error"),
        (500, envelope("api_error", "Internal server error"), UpstreamFailed, 502, "upstream_error", "server_error"),
        (503, b"<html>bad gateway</html>", UpstreamFailed, 502, "upstream_error", "server_error"),
        (402, envelope("billing_error", "credit balance too low"), UpstreamFailed, 502, "upstream_error",
         "server_error"),
    ],
)
def test_error_translation(
    status: int, body: bytes, cls: type[NetraError], http: int, code: str | None, etype: str
) -> None:
    error = error_from_anthropic(status, body)
    assert type(error) is cls
    rendered = error.envelope()["error"]
    assert (error.status_code, rendered["code"], rendered["type"], rendered["param"]) == (http, code, etype, None)


def test_rejected_error_keeps_the_provider_message() -> None:
    error = error_from_anthropic(400, envelope("invalid_request_error", "max_tokens: must be at least 1"))
    assert error.envelope()["error"]["message"] == "max_tokens: must be at least 1"


def test_credential_error_does_not_blame_the_client() -> None:
    error = error_from_anthropic(401, envelope("authentication_error", "invalid x-api-key"))
    assert "credential" in error.message


@pytest.mark.parametrize(
    ("headers", "hint"),
    [({"retry-after": "7"}, 7.0), ({"retry-after": "2.5"}, 2.5), ({"retry-after-ms": "1500"}, 1.5), ({}, None)],
)
def test_overloaded_carries_the_providers_own_retry_hint(headers: dict[str, str], hint: float | None) -> None:
    error = error_from_anthropic(529, envelope("overloaded_error", "Overloaded"), headers)
    # Anthropic's 529s usually carry no Retry-After: none is invented here (the gateway sets the client's own).
    assert error.provider_retry_after == hint
    assert error.headers.get("retry-after") == (None if hint is None else str(math.ceil(hint)))


@pytest.mark.parametrize("body", [b"", b"{}", b"[]", b'{"error": "x"}', b'{"error": {"message": 5}}', b"\xff\xfe"])
def test_garbage_error_bodies(body: bytes) -> None:
    error = error_from_anthropic(400, body)
    assert isinstance(error, UpstreamRejected)
    assert error.message == "The provider returned HTTP 400."
