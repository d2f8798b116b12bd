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
from gateway.body import MAX_DEPTH, MAX_TAGS, parse_object, parse_tags, prompt_chars, read_body, request_hash, validate
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
        ("chat/completions", "stream_options", "include_usage"),
        ("chat/completions", "n", True),
        ("chat/completions", "n", False),
        ("chat/completions", "n", 1.5),
        ("chat/completions", "n", "2"),
        ("chat/completions", "tools", {"type": "function"}),
    ],
)
def test_wrong_type_names_the_parameter(endpoint: str, field: str, value: Any) -> None:
    with pytest.raises(InvalidParameter) as caught:
        assert validate(endpoint, {**VALID[endpoint], field: value}) is None  # accepted: no error raised
    assert_envelope(caught.value.envelope(), type="invalid_request_error", code="invalid_type", param=field)


@pytest.mark.parametrize(
    ("field", "value"),
    [("stream", True), ("stream", False), ("n", 2), ("stream_options", {"include_usage": True}), ("tools", []),
     ("stream", None), ("n", None)],
)
def test_optional_fields_of_the_right_type_pass(field: str, value: Any) -> None:
    assert validate("chat/completions", {**CHAT, field: value}) is None  # accepted: no error raised


def test_unknown_fields_are_left_for_the_provider() -> None:
    body = {**CHAT, "foo": {"bar": 1}, "temperature": "hot", "max_tokens": "many"}
    assert validate("chat/completions", body) is None  # accepted: no error raised


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
    validate("chat/completions", body)
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
