"""The JSON types of the request fields OpenAI documents, checked per endpoint before any provider call.

Types only: value ranges are the provider's business, and fields not listed here are forwarded untouched. The
shapes follow the OpenAI OpenAPI schemas (CreateChatCompletionRequest, CreateCompletionRequest,
CreateEmbeddingRequest, CreateResponse), including which fields may be null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from core.errors import InvalidParameter

# orjson yields exactly these types, so a lookup by exact type suffices and keeps bool apart from int.
_KINDS: Mapping[type, str] = MappingProxyType({
    str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object",
    type(None): "null",
})
_GOT: Mapping[str, str] = MappingProxyType({
    "string": "a string", "integer": "an integer", "number": "a decimal number", "boolean": "a boolean",
    "array": "an array", "object": "an object", "null": "null",
})
Inner = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class Shape:
    """The JSON kinds a field accepts, how OpenAI names them, and a check of what is inside it."""

    accepts: frozenset[type]
    expected: str
    inner: Inner | None = None


class Invalid(Exception):
    """A problem found below the top level; each enclosing level adds its step to the path as it passes through."""

    def __init__(self, code: str, detail: str = "", step: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        # Innermost step first; the path is only built when there is an error (validation runs on every request).
        self.steps = [step] if step else []

    def at(self, field: str) -> InvalidParameter:
        """The client's 400, with the whole path from the top-level `field` down."""
        path = field + "".join(reversed(self.steps))
        if self.code == "missing_required_parameter":
            return missing(path)
        return InvalidParameter(f"Invalid type for '{path}': {self.detail}", code=self.code, param=path)


def missing(path: str) -> InvalidParameter:
    """The 400 for a required field that is absent (or null)."""
    return InvalidParameter(f"Missing required parameter: '{path}'.", code="missing_required_parameter", param=path)


def check(shape: Shape, value: Any) -> None:
    """Raise Invalid unless `value` has one of the shape's kinds (and its insides pass the shape's inner check)."""
    kind = type(value)
    if kind not in shape.accepts:
        got = _GOT.get(_KINDS.get(kind, ""), "a value of another type")
        raise Invalid("invalid_type", f"expected {shape.expected}, but got {got} instead.")
    if shape.inner is not None and (kind is list or kind is dict):
        shape.inner(value)


def check_field(shape: Shape, value: Any, field: str) -> None:
    """`check` for a top-level field: a 400 naming the field path."""
    try:
        check(shape, value)
    except Invalid as problem:
        raise problem.at(field) from None


def each(item: Shape) -> Inner:
    """A check of every item of an array against `item` (paths like `stop[1]`)."""

    def check_items(values: list[Any]) -> None:
        for index, value in enumerate(values):
            try:
                check(item, value)
            except Invalid as problem:
                problem.steps.append(f"[{index}]")
                raise

    return check_items


def fields(table: Mapping[str, Shape], required: tuple[str, ...] = ()) -> Inner:
    """A check of an object's known members (paths like `tools[0].function.name`); others are left alone."""

    def check_members(obj: dict[str, Any]) -> None:
        check_object(table, required, obj)

    return check_members


def check_object(table: Mapping[str, Shape], required: tuple[str, ...], obj: dict[str, Any]) -> None:
    """Check the members of `obj` that `table` knows, after the `required` ones are present."""
    for name in required:
        if name not in obj:
            raise Invalid("missing_required_parameter", step=f".{name}")
    for name, value in obj.items():
        shape = table.get(name)
        if shape is not None:
            try:
                check(shape, value)
            except Invalid as problem:
                problem.steps.append(f".{name}")
                raise


def _kinds(*kinds: str) -> frozenset[type]:
    # JSON integers are valid numbers.
    names = set(kinds) | ({"integer"} if "number" in kinds else set())
    return frozenset(python for python, name in _KINDS.items() if name in names)


STRING = Shape(_kinds("string"), "a string")
NULLABLE_STRING = Shape(_kinds("string", "null"), "a string")
NUMBER = Shape(_kinds("number", "null"), "a number")
INTEGER = Shape(_kinds("integer", "null"), "an integer")
STRICT_INTEGER = Shape(_kinds("integer"), "an integer")
BOOLEAN = Shape(_kinds("boolean", "null"), "a boolean")
STRICT_BOOLEAN = Shape(_kinds("boolean"), "a boolean")
OBJECT = Shape(_kinds("object"), "an object")
STRING_OR_ARRAY = Shape(_kinds("string", "array"), "one of a string or array")
STOP = Shape(_kinds("string", "array", "null"), "one of a string or array of strings", each(STRING))
STREAM_OPTIONS = Shape(
    _kinds("object", "null"), "an object",
    fields(MappingProxyType({"include_usage": STRICT_BOOLEAN, "include_obfuscation": STRICT_BOOLEAN})),
)
TYPED_OBJECT = Shape(_kinds("object"), "an object", fields(MappingProxyType({"type": STRING}), ("type",)))

# --- chat messages ----------------------------------------------------------------------------------------------------

_PART = Shape(
    _kinds("object"), "an object",
    fields(MappingProxyType({"type": STRING, "text": STRING, "refusal": STRING}), ("type",)),
)
_CONTENT = Shape(_kinds("string", "array"), "one of a string or array of objects", each(_PART))
_NULLABLE_CONTENT = Shape(_kinds("string", "array", "null"), "one of a string, array of objects or null", each(_PART))
_FUNCTION_CALL = Shape(_kinds("object"), "an object", fields(MappingProxyType({"name": STRING, "arguments": STRING})))
_TOOL_CALL = Shape(
    _kinds("object"), "an object",
    fields(MappingProxyType({"id": STRING, "type": STRING, "function": _FUNCTION_CALL})),
)
_TOOL_CALLS = Shape(_kinds("array"), "an array of objects", each(_TOOL_CALL))
_SPOKEN = MappingProxyType({"content": _CONTENT, "name": STRING})
# Per role, as the spec's message variants; a role it does not know is the provider's to judge.
_ROLE_FIELDS: Mapping[str, Mapping[str, Shape]] = MappingProxyType({
    "system": _SPOKEN,
    "developer": _SPOKEN,
    "user": _SPOKEN,
    "assistant": MappingProxyType({
        "content": _NULLABLE_CONTENT, "name": STRING, "refusal": NULLABLE_STRING, "tool_calls": _TOOL_CALLS,
    }),
    "tool": MappingProxyType({"content": _CONTENT, "tool_call_id": STRING}),
    "function": MappingProxyType({"content": NULLABLE_STRING, "name": STRING}),
})
_OTHER_ROLE = MappingProxyType({"content": _NULLABLE_CONTENT, "name": STRING})
_ROLE = MappingProxyType({"role": STRING})


def _message(message: dict[str, Any]) -> None:
    check_object(_ROLE, ("role",), message)
    check_object(_ROLE_FIELDS.get(message["role"], _OTHER_ROLE), (), message)


MESSAGES = Shape(_kinds("array"), "an array", each(Shape(_kinds("object"), "an object", _message)))

# --- chat tools -------------------------------------------------------------------------------------------------------

_FUNCTION = MappingProxyType({"name": STRING, "description": STRING, "parameters": OBJECT, "strict": BOOLEAN})
_TOOL = MappingProxyType({"type": STRING})
_FUNCTION_TOOL = MappingProxyType({"function": Shape(_kinds("object"), "an object", fields(_FUNCTION, ("name",)))})


def _chat_tool(tool: dict[str, Any]) -> None:
    check_object(_TOOL, ("type",), tool)
    if tool["type"] == "function":
        check_object(_FUNCTION_TOOL, ("function",), tool)


CHAT_TOOLS = Shape(_kinds("array"), "an array of objects", each(Shape(_kinds("object"), "an object", _chat_tool)))
RESPONSES_TOOLS = Shape(_kinds("array"), "an array of objects", each(TYPED_OBJECT))
TOOL_CHOICE = Shape(
    _kinds("string", "object"), "one of a string or object",
    fields(MappingProxyType({"type": STRING, "function": Shape(_kinds("object"), "an object", fields(
        MappingProxyType({"name": STRING})))})),
)

# --- per endpoint -----------------------------------------------------------------------------------------------------

# Netra itself acts on `stream` and `stream_options` whatever the endpoint.
_STREAMING = MappingProxyType({"stream": BOOLEAN, "stream_options": STREAM_OPTIONS})
_SAMPLING = MappingProxyType({
    **_STREAMING, "temperature": NUMBER, "top_p": NUMBER, "presence_penalty": NUMBER, "frequency_penalty": NUMBER,
    "max_tokens": INTEGER, "n": INTEGER, "seed": INTEGER, "stop": STOP, "user": STRING,
})
FIELDS: Mapping[str, Mapping[str, Shape]] = MappingProxyType({
    "chat/completions": MappingProxyType({
        **_SAMPLING, "model": STRING, "messages": MESSAGES, "max_completion_tokens": INTEGER, "logprobs": BOOLEAN,
        "top_logprobs": INTEGER, "tools": CHAT_TOOLS, "tool_choice": TOOL_CHOICE, "response_format": TYPED_OBJECT,
        "parallel_tool_calls": STRICT_BOOLEAN,
    }),
    "completions": MappingProxyType({
        **_SAMPLING, "model": STRING, "prompt": STRING_OR_ARRAY, "logprobs": INTEGER, "echo": BOOLEAN,
        "best_of": INTEGER, "suffix": NULLABLE_STRING,
    }),
    "embeddings": MappingProxyType({
        **_STREAMING, "model": STRING, "input": STRING_OR_ARRAY, "user": STRING, "dimensions": STRICT_INTEGER,
        "encoding_format": STRING,
    }),
    "responses": MappingProxyType({
        "model": STRING, "input": STRING_OR_ARRAY, "instructions": NULLABLE_STRING, "temperature": NUMBER,
        "top_p": NUMBER, "top_logprobs": STRICT_INTEGER, "max_output_tokens": INTEGER, "user": STRING,
        "tools": RESPONSES_TOOLS, "tool_choice": Shape(_kinds("string", "object"), "one of a string or object"),
        "parallel_tool_calls": BOOLEAN, **_STREAMING,
    }),
})
# Present and not null, per endpoint.
REQUIRED: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "chat/completions": ("model", "messages"),
    "completions": ("model", "prompt"),
    "embeddings": ("model", "input"),
    "responses": ("model",),
})


def validate(endpoint: str, body: dict[str, Any]) -> None:
    """Check the types of the fields OpenAI documents for `endpoint`; everything else is forwarded untouched."""
    for name in REQUIRED[endpoint]:
        if body.get(name) is None:
            raise missing(name)
    table = FIELDS[endpoint]
    for name, value in body.items():
        shape = table.get(name)
        # A top-level null is an absent field to every client library: forwarded, never refused here.
        if shape is not None and value is not None:
            check_field(shape, value, name)
