"""Request bodies: size limit, JSON parsing, the fields Netra checks, the request hash, prompt size and tags."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message

from core.errors import InvalidJSON, InvalidParameter, NetraError, RequestTooLarge
from gateway.body import MAX_DEPTH, MAX_TAGS, parse_object, parse_tags, prompt_chars, read_body, validate
from gateway.cache import canonical_hash as request_hash
from gateway.errors import netra_error
from tests.unit.helpers import assert_envelope

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
VALID = {
    "chat/completions": CHAT,
    "completions": {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"},
    "embeddings": {"model": "text-embedding-3-small", "input": ["a", "b"]},
    "responses": {"model": "gpt-4o", "input": "Hi"},
}
REQUIRED = [
    ("chat/completions", "model"), ("chat/completions", "messages"), ("completions", "model"),
    ("completions", "prompt"), ("embeddings", "model"), ("embeddings", "input"), ("responses", "model"),
]


# --- validate ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", sorted(VALID))
def test_a_valid_body_passes(endpoint: str) -> None:
    assert validate(endpoint, dict(VALID[endpoint])) is None  # accepted: no error raised


@pytest.mark.parametrize(("endpoint", "field"), REQUIRED)
def test_missing_field_names_the_parameter(endpoint: str, field: str) -> None:
    body = {k: v for k, v in VALID[endpoint].items() if k != field}
    with pytest.raises(InvalidParameter) as caught:
        validate(endpoint, body)
    assert caught.value.status_code == 400
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code="missing_required_parameter",
                    param=field)


@pytest.mark.parametrize(("endpoint", "field"), REQUIRED)
def test_null_field_counts_as_missing(endpoint: str, field: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate(endpoint, {**VALID[endpoint], field: None})
    assert (caught.value.code, caught.value.param) == ("missing_required_parameter", field)


@pytest.mark.parametrize(
    ("endpoint", "field", "value"),
    [
        ("chat/completions", "model", 4),
        ("chat/completions", "model", ["gpt-4o"]),
        ("chat/completions", "messages", "Hello"),
        ("chat/completions", "messages", {"role": "user"}),
        ("completions", "prompt", 12),
        ("embeddings", "input", {"text": "a"}),
        ("responses", "model", True),
        ("chat/completions", "stream", "yes"),
        ("chat/completions", "stream", 1),
        ("embeddings", "stream", "yes"),
        ("chat/completions", "stream_options", "include_usage"),
        ("chat/completions", "n", True),
        ("chat/completions", "n", False),
        ("chat/completions", "n", 1.5),
        ("chat/completions", "n", "2"),
        ("chat/completions", "tools", {"type": "function"}),
        ("chat/completions", "temperature", "0.7"),
        ("chat/completions", "temperature", True),
        ("chat/completions", "temperature", [0.7]),
        ("chat/completions", "top_p", "1"),
        ("chat/completions", "presence_penalty", {"v": 1}),
        ("chat/completions", "frequency_penalty", False),
        ("chat/completions", "max_tokens", "many"),
        ("chat/completions", "max_tokens", 10.5),
        ("chat/completions", "max_completion_tokens", "100"),
        ("chat/completions", "seed", 4.2),
        ("chat/completions", "top_logprobs", "3"),
        ("chat/completions", "stop", 3),
        ("chat/completions", "stop", {"a": 1}),
        ("chat/completions", "logprobs", 1),
        ("chat/completions", "logprobs", "true"),
        ("chat/completions", "user", 42),
        ("chat/completions", "tools", "search"),
        ("chat/completions", "tool_choice", 1),
        ("chat/completions", "tool_choice", ["auto"]),
        ("chat/completions", "response_format", "json"),
        ("chat/completions", "parallel_tool_calls", "yes"),
        ("completions", "temperature", "hot"),
        ("completions", "logprobs", True),
        ("completions", "logprobs", 2.5),
        ("completions", "max_tokens", "16"),
        ("completions", "echo", "yes"),
        ("completions", "suffix", 3),
        ("embeddings", "user", ["u"]),
        ("embeddings", "dimensions", "256"),
        ("embeddings", "encoding_format", 64),
        ("responses", "temperature", "0.2"),
        ("responses", "max_output_tokens", "100"),
        ("responses", "tools", {"type": "web_search"}),
        ("responses", "tool_choice", 0),
        ("responses", "instructions", ["be brief"]),
        ("responses", "input", 5),
    ],
)
def test_wrong_type_names_the_parameter(endpoint: str, field: str, value: Any) -> None:
    with pytest.raises(InvalidParameter) as caught:
        assert validate(endpoint, {**VALID[endpoint], field: value}) is None  # accepted: no error raised
    assert caught.value.status_code == 400
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code="invalid_type", param=field)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", "0.7", "Invalid type for 'temperature': expected a number, but got a string instead."),
        ("max_tokens", 1.5, "Invalid type for 'max_tokens': expected an integer, but got a decimal number instead."),
        ("n", True, "Invalid type for 'n': expected an integer, but got a boolean instead."),
        ("stop", 3, "Invalid type for 'stop': expected one of a string or array of strings, but got an integer"
                    " instead."),
        ("user", 42, "Invalid type for 'user': expected a string, but got an integer instead."),
        ("tools", {}, "Invalid type for 'tools': expected an array of objects, but got an object instead."),
    ],
)
def test_type_errors_read_like_openais(field: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate("chat/completions", {**CHAT, field: value})
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("endpoint", "fields"),
    [
        ("chat/completions", {"temperature": 1, "top_p": 0.5, "presence_penalty": -1, "frequency_penalty": 0.25,
                              "max_tokens": 10, "max_completion_tokens": 20, "n": 2, "seed": -7, "top_logprobs": 3,
                              "logprobs": True, "stop": "END", "user": "u-1", "tool_choice": "auto",
                              "response_format": {"type": "json_object"}, "parallel_tool_calls": False}),
        ("chat/completions", {"temperature": None, "top_p": None, "presence_penalty": None, "frequency_penalty": None,
                              "max_tokens": None, "max_completion_tokens": None, "n": None, "seed": None,
                              "top_logprobs": None, "logprobs": None, "stop": None, "stream_options": None}),
        ("chat/completions", {"stop": ["a", "b"], "tool_choice": {"type": "function", "function": {"name": "f"}},
                              "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}},
                                        {"type": "custom", "custom": {"name": "g"}}]}),
        ("completions", {"logprobs": 2, "max_tokens": 16, "echo": True, "suffix": None, "best_of": 1,
                         "temperature": 0, "stop": ["\n"], "user": "u"}),
        ("embeddings", {"dimensions": 256, "encoding_format": "float", "user": "u"}),
        ("responses", {"temperature": 0.2, "top_p": 1, "max_output_tokens": 100, "top_logprobs": 2,
                       "instructions": None, "tools": [{"type": "web_search"}], "tool_choice": {"type": "file_search"},
                       "parallel_tool_calls": None, "input": [{"role": "user", "content": "hi"}]}),
    ],
)
def test_right_types_pass(endpoint: str, fields: dict[str, Any]) -> None:
    assert validate(endpoint, {**VALID[endpoint], **fields}) is None  # accepted: no error raised


@pytest.mark.parametrize(
    ("field", "value"),
    [("stream", True), ("stream", False), ("n", 2), ("stream_options", {"include_usage": True}), ("tools", []),
     ("stream", None), ("n", None), ("user", None), ("tools", None), ("tool_choice", None),
     ("response_format", None)],
)
def test_optional_fields_of_the_right_type_pass(field: str, value: Any) -> None:
    assert validate("chat/completions", {**CHAT, field: value}) is None  # accepted: no error raised


@pytest.mark.parametrize(
    ("endpoint", "fields"),
    [
        # Fields an endpoint does not document are the provider's to judge, whatever their type.
        ("chat/completions", {"foo": {"bar": 1}, "max_output_tokens": "x", "top_k": "many", "metadata": 5}),
        ("embeddings", {"temperature": "hot", "n": "two", "stop": 1}),
        ("responses", {"n": "2", "stop": 5, "response_format": "json", "max_tokens": "x"}),
        ("completions", {"tools": "x", "messages": 5}),
    ],
)
def test_unknown_fields_are_left_for_the_provider(endpoint: str, fields: dict[str, Any]) -> None:
    assert validate(endpoint, {**VALID[endpoint], **fields}) is None  # accepted: no error raised


def test_logprobs_is_a_boolean_for_chat_and_an_integer_for_completions() -> None:
    validate("chat/completions", {**CHAT, "logprobs": True})
    validate("completions", {**VALID["completions"], "logprobs": 3})
    with pytest.raises(InvalidParameter, match="expected a boolean"):
        validate("chat/completions", {**CHAT, "logprobs": 3})
    with pytest.raises(InvalidParameter, match="expected an integer"):
        validate("completions", {**VALID["completions"], "logprobs": True})


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(**fields: Any) -> dict[str, Any]:
    return {"role": "assistant", **fields}


def call(**fields: Any) -> dict[str, Any]:
    return {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}, **fields}


@pytest.mark.parametrize(
    ("messages", "param", "code"),
    [
        (["hi"], "messages[0]", "invalid_type"),
        ([user("hi"), None], "messages[1]", "invalid_type"),
        ([{"content": "hi"}], "messages[0].role", "missing_required_parameter"),
        ([{"role": None, "content": "hi"}], "messages[0].role", "invalid_type"),
        ([{"role": 1, "content": "hi"}], "messages[0].role", "invalid_type"),
        ([user(5)], "messages[0].content", "invalid_type"),
        ([user(None)], "messages[0].content", "invalid_type"),
        ([{"role": "system", "content": {"text": "x"}}], "messages[0].content", "invalid_type"),
        ([{"role": "tool", "tool_call_id": "c", "content": None}], "messages[0].content", "invalid_type"),
        ([user("a"), user(["hi"])], "messages[1].content[0]", "invalid_type"),
        ([user([{"text": "hi"}])], "messages[0].content[0].type", "missing_required_parameter"),
        ([user([{"type": 1, "text": "hi"}])], "messages[0].content[0].type", "invalid_type"),
        ([user([{"type": "text", "text": None}])], "messages[0].content[0].text", "invalid_type"),
        ([user([{"type": "text", "text": "a"}, {"type": "text", "text": 5}])], "messages[0].content[1].text",
         "invalid_type"),
        ([{**user("hi"), "name": 7}], "messages[0].name", "invalid_type"),
        ([assistant(content=5)], "messages[0].content", "invalid_type"),
        ([assistant(content=[{"type": "refusal", "refusal": 1}])], "messages[0].content[0].refusal", "invalid_type"),
        ([assistant(refusal=5)], "messages[0].refusal", "invalid_type"),
        ([assistant(tool_calls=5)], "messages[0].tool_calls", "invalid_type"),
        ([assistant(tool_calls={"id": "x"})], "messages[0].tool_calls", "invalid_type"),
        ([assistant(tool_calls=["call"])], "messages[0].tool_calls[0]", "invalid_type"),
        ([assistant(tool_calls=[call(), call(id=5)])], "messages[0].tool_calls[1].id", "invalid_type"),
        ([assistant(tool_calls=[call(type=None)])], "messages[0].tool_calls[0].type", "invalid_type"),
        ([assistant(tool_calls=[call(function="f")])], "messages[0].tool_calls[0].function", "invalid_type"),
        ([assistant(tool_calls=[call(function={"name": 1, "arguments": "{}"})])],
         "messages[0].tool_calls[0].function.name", "invalid_type"),
        ([assistant(tool_calls=[call(function={"name": "f", "arguments": {"a": 1}})])],
         "messages[0].tool_calls[0].function.arguments", "invalid_type"),
        ([{"role": "tool", "tool_call_id": 5, "content": "x"}], "messages[0].tool_call_id", "invalid_type"),
        ([{"role": "function", "name": "f", "content": ["x"]}], "messages[0].content", "invalid_type"),
    ],
)
def test_message_shapes_name_the_path(messages: list[Any], param: str, code: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate("chat/completions", {**CHAT, "messages": messages})
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code=code, param=param)


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "system", "content": "Be brief.", "name": "rules"}, user("hi")],
        [{"role": "developer", "content": [{"type": "text", "text": "x"}]}],
        [user([{"type": "text", "text": "what is"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}])],
        [assistant(content=None, tool_calls=[call()]), {"role": "tool", "tool_call_id": "call_1", "content": "ok"}],
        [assistant(content="", refusal=None, tool_calls=[])],
        [assistant(content=[{"type": "refusal", "refusal": "no"}])],
        [{"role": "function", "name": "f", "content": None}],
        [{"role": "ipython", "content": None, "extra": {"any": "thing"}}],
        [user("hi"), assistant(content="hello", audio={"id": "a"}, custom_field=[1])],
    ],
)
def test_well_formed_messages_pass(messages: list[Any]) -> None:
    assert validate("chat/completions", {**CHAT, "messages": messages}) is None  # accepted: no error raised


@pytest.mark.parametrize(
    ("tools", "param", "code"),
    [
        (["search"], "tools[0]", "invalid_type"),
        ([{"function": {"name": "f"}}], "tools[0].type", "missing_required_parameter"),
        ([{"type": 5}], "tools[0].type", "invalid_type"),
        ([{"type": "function"}], "tools[0].function", "missing_required_parameter"),
        ([{"type": "function", "function": "f"}], "tools[0].function", "invalid_type"),
        ([{"type": "function", "function": {"description": "d"}}], "tools[0].function.name",
         "missing_required_parameter"),
        ([{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": 5}}],
         "tools[1].function.name", "invalid_type"),
        ([{"type": "function", "function": {"name": "f", "parameters": "{}"}}], "tools[0].function.parameters",
         "invalid_type"),
        ([{"type": "function", "function": {"name": "f", "description": 1}}], "tools[0].function.description",
         "invalid_type"),
    ],
)
def test_tool_shapes_name_the_path(tools: list[Any], param: str, code: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate("chat/completions", {**CHAT, "tools": tools})
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code=code, param=param)


@pytest.mark.parametrize(
    ("field", "value", "param", "code"),
    [
        ("tool_choice", {"type": "function", "function": {"name": 5}}, "tool_choice.function.name", "invalid_type"),
        ("tool_choice", {"type": "function", "function": "f"}, "tool_choice.function", "invalid_type"),
        ("response_format", {"json_schema": {}}, "response_format.type", "missing_required_parameter"),
        ("response_format", {"type": 1}, "response_format.type", "invalid_type"),
        ("stop", ["a", 1], "stop[1]", "invalid_type"),
        ("stream_options", {"include_usage": "yes"}, "stream_options.include_usage", "invalid_type"),
    ],
)
def test_nested_field_shapes_name_the_path(field: str, value: Any, param: str, code: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate("chat/completions", {**CHAT, field: value})
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code=code, param=param)


@pytest.mark.parametrize(("endpoint", "field", "value"), [("completions", "prompt", ["a", "b"]),
                                                           ("embeddings", "input", "one string")])
def test_string_or_array_fields_accept_both(endpoint: str, field: str, value: Any) -> None:
    assert validate(endpoint, {**VALID[endpoint], field: value}) is None  # accepted: no error raised


# --- parse_object -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b'{"model": "gpt-4o",',
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b"42",
        b'{"model": "gpt-4o", "messages": "\xff\xfe"}',
        b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}",
        b'{"x": 1e400}',
    ],
    ids=["empty", "not-json", "truncated", "array", "string", "null", "number", "invalid-utf8", "too-deep",
         "infinite-number"],
)
def test_unreadable_bodies_are_invalid_json(raw: bytes) -> None:
    with pytest.raises(InvalidJSON) as caught:
        parse_object(raw)
    assert caught.value.status_code == 400
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code="invalid_json")


def test_an_object_parses() -> None:
    assert parse_object(b'{"model": "gpt-4o", "n": 2, "x": {"y": [1]}}') == {"model": "gpt-4o", "n": 2,
                                                                              "x": {"y": [1]}}


def test_nesting_within_the_limit_parses() -> None:
    depth = MAX_DEPTH - 1  # the object itself is the first level
    body = parse_object(b'{"a": ' + b"[" * depth + b"]" * depth + b"}")
    assert isinstance(body["a"], list)


def test_nesting_beyond_the_limit_is_invalid_json() -> None:
    with pytest.raises(InvalidJSON, match="nested"):
        parse_object(b'{"a": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}")


@pytest.mark.parametrize("depth", [300, 900])
def test_a_body_that_parses_can_be_hashed_and_measured(depth: int) -> None:
    # Whatever parse_object accepts, the rest of the request path must handle (or parse_object must refuse it
    # as invalid_json, "too deep"); a crash here is a 500 for the client.
    nested = b"[" * depth + b"]" * depth
    raw = b'{"model": "gpt-4o-mini", "messages": ' + nested + b', "x": ' + nested + b"}"
    try:
        body = parse_object(raw)
    except InvalidJSON:
        return
    with pytest.raises(InvalidParameter) as caught:
        validate("chat/completions", body)
    assert caught.value.param == "messages[0]"
    assert len(request_hash("chat/completions", body)) == 32
    assert prompt_chars("chat/completions", body) == 0


# --- request_hash -----------------------------------------------------------------------------------------------------


def test_hash_ignores_fields_that_do_not_change_the_answer() -> None:
    plain = request_hash("chat/completions", CHAT)
    noisy = {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "user": "u-1",
             "metadata": {"trace": "abc"}, "store": True}
    assert request_hash("chat/completions", noisy) == plain


def test_hash_ignores_key_order() -> None:
    reordered = {"messages": CHAT["messages"], "model": CHAT["model"]}
    assert request_hash("chat/completions", reordered) == request_hash("chat/completions", CHAT)


@pytest.mark.parametrize(
    "other",
    [
        {**CHAT, "model": "gpt-4o"},
        {**CHAT, "messages": [{"role": "user", "content": "Hello!"}]},
        {**CHAT, "temperature": 0.5},
        {**CHAT, "n": 2},
    ],
)
def test_hash_changes_with_what_changes_the_answer(other: dict[str, Any]) -> None:
    assert request_hash("chat/completions", other) != request_hash("chat/completions", CHAT)


def test_hash_depends_on_the_endpoint() -> None:
    body = {"model": "m", "input": "x"}
    assert request_hash("embeddings", body) != request_hash("responses", body)


# --- prompt_chars -----------------------------------------------------------------------------------------------------


def test_prompt_chars_of_string_contents() -> None:
    body = {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Hello"}]}
    assert prompt_chars("chat/completions", body) == len("Be brief.") + len("Hello")


def test_prompt_chars_of_part_arrays() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "text", "text": " this image?"},
            ]},
            {"role": "assistant", "content": None, "tool_calls": []},
        ],
    }
    assert prompt_chars("chat/completions", body) == len("What is in") + len(" this image?")


@pytest.mark.parametrize(
    ("endpoint", "body", "expected"),
    [
        ("completions", {"prompt": "abcd"}, 4),
        ("completions", {"prompt": ["ab", "cde"]}, 5),
        ("embeddings", {"input": ["one", "three"]}, 8),
        ("responses", {"input": "hi", "instructions": "Be nice."}, 10),
        ("responses", {"input": [{"role": "user", "content": [{"type": "input_text", "text": "hey"}]}]}, 3),
        ("chat/completions", {}, 0),
    ],
)
def test_prompt_chars_per_endpoint(endpoint: str, body: dict[str, Any], expected: int) -> None:
    assert prompt_chars(endpoint, body) == expected


# --- parse_tags -------------------------------------------------------------------------------------------------------


def test_tags_are_split_and_trimmed() -> None:
    assert parse_tags(" team=search, batch ,,nightly ") == ["team=search", "batch", "nightly"]


@pytest.mark.parametrize("header", [None, "", " , ,"])
def test_no_tags(header: str | None) -> None:
    assert parse_tags(header) == []


def test_tags_are_bounded_in_number_and_length() -> None:
    tags = parse_tags(",".join(f"t{i}" for i in range(100)))
    assert tags == [f"t{i}" for i in range(MAX_TAGS)]
    assert parse_tags("x" * 500) == ["x" * 64]


# --- read_body --------------------------------------------------------------------------------------------------------

LIMIT = 1024


async def echo_length(request: Request) -> Response:
    body = await read_body(request, LIMIT)
    return Response(str(len(body)))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Route("/", echo_length, methods=["POST"])], exception_handlers={NetraError: netra_error})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def test_body_within_the_limit_is_read_whole(client: httpx.AsyncClient) -> None:
    response = await client.post("/", content=b"x" * LIMIT)
    assert (response.status_code, response.text) == (200, str(LIMIT))


async def test_declared_length_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert_envelope(response.json(), type="invalid_request_error", code="request_too_large")


async def test_chunked_body_growing_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 100

    response = await client.post("/", content=chunks())
    assert response.status_code == 413
    assert_envelope(response.json(), type="invalid_request_error", code="request_too_large")


async def test_chunked_body_under_the_limit_is_read(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 100

    response = await client.post("/", content=chunks())
    assert (response.status_code, response.text) == (200, "500")


def _request(headers: list[tuple[bytes, bytes]], receive: Any) -> Request:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    return Request(scope, receive)


async def test_declared_length_is_refused_before_reading() -> None:
    async def receive() -> Message:
        raise AssertionError("the body was read")

    with pytest.raises(RequestTooLarge):
        await read_body(_request([(b"content-length", str(LIMIT * 1000).encode())], receive), LIMIT)


async def test_endless_body_stops_being_read_past_the_limit() -> None:
    received = 0

    async def receive() -> Message:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": b"z" * 100, "more_body": True}

    with pytest.raises(RequestTooLarge):
        await read_body(_request([], receive), LIMIT)
    assert received == LIMIT // 100 + 1


def test_hash_treats_defaults_and_nulls_as_absent() -> None:
    # The ledger's request_hash is the cache's canonical hash: logged repeats are what the cache would serve.
    same = {**CHAT, "n": 1, "temperature": None, "stream": True}
    assert request_hash("chat/completions", same) == request_hash("chat/completions", CHAT)
