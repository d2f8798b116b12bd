"""The error tree: every error renders the OpenAI envelope with DESIGN.md's status, type and code."""

from __future__ import annotations

import orjson
import pytest

from core.errors import (
    AuthenticationFailed,
    HeadersTooLarge,
    InvalidJSON,
    InvalidParameter,
    MethodNotAllowed,
    ModelNotFound,
    NetraError,
    NotFound,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    RequestTooLarge,
    ServiceUnavailable,
    TenantSuspended,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
    sanitise,
)
from tests.unit.helpers import assert_envelope

# (error, status, type, code, param) — the rows of DESIGN.md §3's error table, plus routing and connection errors.
TABLE = [
    (InvalidJSON("bad body"), 400, "invalid_request_error", "invalid_json", None),
    (
        InvalidParameter("Missing 'messages'.", code="missing_required_parameter", param="messages"),
        400, "invalid_request_error", "missing_required_parameter", "messages",
    ),
    (InvalidParameter("Wrong type for 'n'.", param="n"), 400, "invalid_request_error", "invalid_type", "n"),
    (AuthenticationFailed("no key", code="missing_api_key"), 401, "invalid_request_error", "missing_api_key", None),
    (AuthenticationFailed("bad key"), 401, "invalid_request_error", "invalid_api_key", None),
    (TenantSuspended("suspended"), 403, "permission_error", "tenant_suspended", None),
    (ModelNotFound("gpt-9"), 404, "invalid_request_error", "model_not_found", "model"),
    (NotFound("no route"), 404, "invalid_request_error", "not_found", None),
    (MethodNotAllowed("wrong method"), 405, "invalid_request_error", "method_not_allowed", None),
    (RequestTimeout("stalled"), 408, "invalid_request_error", "request_timeout", None),
    (RequestTooLarge("too big"), 413, "invalid_request_error", "request_too_large", None),
    (HeadersTooLarge("headers too big"), 431, "invalid_request_error", "headers_too_large", None),
    (RateLimited("slow down"), 429, "rate_limit_error", "rate_limit_exceeded", None),
    (QuotaExceeded("budget spent"), 429, "insufficient_quota", "insufficient_quota", None),
    (UpstreamFailed("provider 500"), 502, "server_error", "upstream_error", None),
    (UpstreamFailed("bad credential", code="upstream_auth_error"), 502, "server_error", "upstream_auth_error", None),
    (ServiceUnavailable("no upstream"), 503, "server_error", "upstream_unavailable", None),
    (ServiceUnavailable("overloaded", code="upstream_overloaded"), 503, "server_error", "upstream_overloaded", None),
    (ServiceUnavailable("stopping", code="shutting_down"), 503, "server_error", "shutting_down", None),
    (ServiceUnavailable("full", code="too_many_connections"), 503, "server_error", "too_many_connections", None),
    (UpstreamTimeout("too slow"), 504, "server_error", "upstream_timeout", None),
]


@pytest.mark.parametrize(("error", "status", "etype", "code", "param"), TABLE, ids=lambda v: getattr(v, "code", None))
def test_error_renders_the_table_row(error: NetraError, status: int, etype: str, code: str, param: str | None) -> None:
    assert error.status_code == status
    envelope = orjson.loads(error.body())
    assert envelope == error.envelope()
    detail = assert_envelope(envelope, type=etype, code=code, param=param)
    assert detail["message"] == error.message


def test_model_not_found_names_the_model() -> None:
    assert "`gpt-9`" in ModelNotFound("gpt-9").envelope()["error"]["message"]


def test_headers_travel_with_the_error() -> None:
    error = RateLimited("slow down", headers={"retry-after": "42"})
    assert error.headers == {"retry-after": "42"}
    assert NetraError("x").headers == {}


def test_every_class_is_covered_by_the_table() -> None:
    import core.errors as module

    classes = {
        obj for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, NetraError) and obj not in (NetraError, UpstreamRejected)
    }
    assert classes == {type(row[0]) for row in TABLE}


# --- sanitise -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-AbCdEf0123456789_xyz-TUV",
        "sk-ant-api03-abcdefghijklmnop",
        "nk-Q2xhdWRlIGlzIGEgZ29vZCBib3Q_-x",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "Bearer nk-abcdefghij0123",
    ],
)
def test_sanitise_removes_credentials(secret: str) -> None:
    cleaned = sanitise(f"Incorrect API key provided: '{secret}' (check it)")
    assert cleaned == "Incorrect API key provided: '[redacted]' (check it)"


def test_sanitise_removes_every_credential_in_a_message() -> None:
    cleaned = sanitise("keys sk-aaaaaaaaaa and nk-bbbbbbbbbb, header Authorization: Bearer cccccccccccc")
    for fragment in ("aaaaaaaaaa", "bbbbbbbbbb", "cccccccccccc"):
        assert fragment not in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "The Authorization header must use the Bearer scheme.",
        "Use a Bearer token.",
        "The model `gpt-4o-mini` does not exist or you do not have access to it.",
        "Invalid value for 'messages[0].role': expected one of system, user, assistant.",
        "",
    ],
)
def test_sanitise_leaves_ordinary_text_alone(text: str) -> None:
    assert sanitise(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "The model `fraud-risk-assessment` does not exist.",
        "Tool 'bank-account-lookup' failed validation.",
        "Unknown task-management option.",
    ],
)
def test_sanitise_leaves_words_containing_sk_or_nk_alone(text: str) -> None:
    # "risk-", "bank-", "task-" contain "sk-"/"nk-" inside a word: they are not key prefixes.
    assert sanitise(text) == text


def test_sanitise_bounds_the_message() -> None:
    assert len(sanitise("x" * 10_000)) == 2000


def test_envelope_message_is_sanitised() -> None:
    error = UpstreamFailed("provider said: Incorrect API key provided: sk-live-0123456789abcdef")
    rendered = error.body()
    assert b"0123456789abcdef" not in rendered
    assert b"provider said: Incorrect API key provided" in rendered


# --- UpstreamRejected -----------------------------------------------------------------------------------------------


def test_upstream_rejected_keeps_the_providers_status_type_code_and_param() -> None:
    error = UpstreamRejected(
        422, "Invalid value for 'temperature'.", etype="invalid_request_error", code="invalid_value",
        param="temperature",
    )
    assert error.status_code == 422
    assert_envelope(orjson.loads(error.body()), type="invalid_request_error", code="invalid_value", param="temperature")


def test_upstream_rejected_keeps_a_null_code_null() -> None:
    error = UpstreamRejected(400, "messages: Input should be a valid list", etype=None, code=None, param=None)
    assert error.status_code == 400
    assert_envelope(error.envelope(), type="invalid_request_error", code=None)


def test_upstream_rejected_keeps_an_unusual_provider_type() -> None:
    error = UpstreamRejected(404, "No such model", etype="not_found_error", code="model_not_found", param="model")
    assert error.status_code == 404
    assert_envelope(error.envelope(), type="not_found_error", code="model_not_found", param="model")


def test_upstream_rejected_message_is_sanitised() -> None:
    error = UpstreamRejected(
        400, "Bad request from key sk-abcdefghijklmnop", etype="invalid_request_error", code=None, param=None
    )
    assert "abcdefghijklmnop" not in error.envelope()["error"]["message"]
