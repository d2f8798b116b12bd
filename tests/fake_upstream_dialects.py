"""How each provider authenticates and shapes its errors: OpenAI, Azure OpenAI and Anthropic."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fake_upstream_behaviour import next_id

JSON = "application/json"
_OPENAI_ERRORS: dict[int, tuple[str, str, str | None, str | None]] = {
    400: ("Invalid value for 'messages'.", "invalid_request_error", "messages", "invalid_value"),
    401: (
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    ),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None, "model_not_allowed"),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        None,
        "model_not_found",
    ),
    429: (
        "Rate limit reached for requests per min (RPM). Please try again in 1s.",
        "requests",
        None,
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None, None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None, None),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "messages: Input should be a valid list"),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}


def _respond(status: int, payload: Any, request_id_header: str) -> web.Response:
    headers = {request_id_header: next_id("req_fake")}
    if status == 429:
        headers["retry-after"] = "1"
    return web.Response(status=status, body=orjson.dumps(payload), content_type=JSON, headers=headers)


class OpenAIDialect:
    """OpenAI: ``Authorization: Bearer <key>``, errors as ``{"error": {message, type, param, code}}``."""

    overloaded_status = 503
    request_id_header = "x-request-id"

    def __init__(self, api_key: str) -> None:
        self._expected = f"Bearer {api_key}"

    def authorised(self, request: web.Request) -> bool:
        """Whether the request carries the right credential."""
        return request.headers.get("authorization") == self._expected

    def unauthorised(self) -> web.Response:
        """The provider's answer to a missing or wrong credential."""
        return self.error(401, "")

    def error(self, status: int, model: str) -> web.Response:
        """The provider's error for a status, as the ``error-<status>`` models ask."""
        default = ("Fake upstream error.", "server_error" if status >= 500 else "invalid_request_error", None, None)
        message, kind, param, code = _OPENAI_ERRORS.get(status, default)
        return self.invalid(message.format(model=model), param, code, kind=kind, status=status)

    def missing(self, field: str) -> web.Response:
        """The answer to a request without a required field."""
        return self.invalid(f"Missing required parameter: '{field}'.", field, "missing_required_parameter")

    def invalid(
        self,
        message: str,
        param: str | None,
        code: str | None,
        *,
        kind: str = "invalid_request_error",
        status: int = 400,
    ) -> web.Response:
        """A request the provider rejects, with its message and the offending parameter."""
        payload = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        return _respond(status, payload, self.request_id_header)


class AzureDialect(OpenAIDialect):
    """Azure OpenAI: ``api-key: <key>`` and an ``api-version`` query parameter; model errors as OpenAI's."""

    def __init__(self, api_key: str) -> None:
        super().__init__(api_key)
        self._key = api_key

    def authorised(self, request: web.Request) -> bool:
        """Whether the request carries the right key and names an API version."""
        return request.headers.get("api-key") == self._key and "api-version" in request.query

    def unauthorised(self) -> web.Response:
        """Azure's own envelope for a refused credential."""
        message = (
            "Access denied due to invalid subscription key or wrong API endpoint, or missing api-version. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
        )
        return _respond(401, {"error": {"code": "401", "message": message}}, "apim-request-id")


class AnthropicDialect:
    """Anthropic: ``x-api-key`` and ``anthropic-version``; errors as ``{"type": "error", "error": {type, message}}``."""

    overloaded_status = 529
    request_id_header = "request-id"

    def __init__(self, api_key: str) -> None:
        self._key = api_key

    def authorised(self, request: web.Request) -> bool:
        """Whether the request carries the right key and an API version."""
        return request.headers.get("x-api-key") == self._key and "anthropic-version" in request.headers

    def unauthorised(self) -> web.Response:
        """Anthropic's answer to a missing or wrong credential."""
        return self.error(401, "")

    def error(self, status: int, model: str) -> web.Response:
        """Anthropic's error for a status, as the ``error-<status>`` models ask."""
        default = ("api_error" if status >= 500 else "invalid_request_error", "Fake upstream error.")
        kind, message = _ANTHROPIC_ERRORS.get(status, default)
        payload = {"type": "error", "error": {"type": kind, "message": message.format(model=model)}}
        return _respond(status, payload, self.request_id_header)

    def missing(self, field: str) -> web.Response:
        """The answer to a request without a required field."""
        return self.invalid(f"{field}: Field required", field, None)

    def invalid(self, message: str, param: str | None, code: str | None) -> web.Response:
        """A request Anthropic rejects; only the message travels."""
        payload = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        return _respond(400, payload, self.request_id_header)


Dialect = OpenAIDialect | AnthropicDialect
