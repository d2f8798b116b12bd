"""The one error tree, rendered as the OpenAI envelope.

    NetraError                      status type                   code
    ├── InvalidJSON                 400    invalid_request_error  invalid_json
    ├── InvalidParameter            400    invalid_request_error  missing_required_parameter / invalid_type / ...
    ├── AuthenticationFailed        401    invalid_request_error  missing_api_key / invalid_api_key
    ├── TenantSuspended             403    permission_error       tenant_suspended
    ├── ModelNotFound               404    invalid_request_error  model_not_found
    ├── RequestTooLarge             413    invalid_request_error  request_too_large
    ├── RequestTimeout              408    invalid_request_error  request_timeout
    ├── HeadersTooLarge             431    invalid_request_error  headers_too_large
    ├── RateLimited                 429    rate_limit_error       rate_limit_exceeded (+ retry-after)
    ├── QuotaExceeded               429    insufficient_quota     insufficient_quota (+ x-should-retry: false)
    ├── UpstreamRejected            4xx    passed through from the provider (message sanitised)
    ├── UpstreamFailed              502    server_error           upstream_error / upstream_auth_error
    ├── ServiceUnavailable          503    server_error           upstream_unavailable / upstream_overloaded /
    │                                                             shutting_down / logging_unavailable / auth_unavailable
    └── UpstreamTimeout             504    server_error           upstream_timeout
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import orjson

_SECRETISH = re.compile(r"(?<![A-Za-z0-9])((?:sk|nk)-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9._~+/=\-]{8,})")


def redact(message: str) -> str:
    """Remove anything that looks like a credential, keeping the message whole (for logs and the operator)."""
    return _SECRETISH.sub("[redacted]", message)


def sanitise(message: str) -> str:
    """Remove anything that looks like a credential from a message before it leaves Netra."""
    return redact(message)[:2000]


class NetraError(Exception):
    """Base of every error a client can see; carries what the envelope needs."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str] = "internal_error"
    # The provider's own retry hint in seconds, on errors made from a provider's answer (None: it sent none).
    provider_retry_after: float | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.param = param
        self.headers = headers or {}
        self.status_code = status or self.status

    @property
    def error_type(self) -> str:
        """The envelope's `type` field."""
        return self.type

    def envelope(self) -> dict[str, Any]:
        """The OpenAI error object."""
        return {
            "error": {
                "message": sanitise(self.message),
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body(self) -> bytes:
        """The envelope as JSON bytes."""
        return orjson.dumps(self.envelope())


class InvalidJSON(NetraError):
    """The body is not a JSON object we can read."""

    status = 400
    type = "invalid_request_error"
    default_code = "invalid_json"


class InvalidParameter(NetraError):
    """A field is missing or has the wrong type or value."""

    status = 400
    type = "invalid_request_error"
    default_code = "invalid_type"


class AuthenticationFailed(NetraError):
    """No key, or a key that is unknown, revoked or expired."""

    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class TenantSuspended(NetraError):
    """The key is valid but its tenant may not make calls."""

    status = 403
    type = "permission_error"
    default_code = "tenant_suspended"


class ModelNotFound(NetraError):
    """The model is unknown or not allowed for this key."""

    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"

    def __init__(self, model: str, message: str | None = None) -> None:
        super().__init__(
            message or f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
        )


class NotFound(NetraError):
    """No such route."""

    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class MethodNotAllowed(NetraError):
    """The route exists but not with this method."""

    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class RequestTooLarge(NetraError):
    """The body exceeds the configured limit."""

    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RequestTimeout(NetraError):
    """The client stopped sending its request part-way (headers or body)."""

    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class HeadersTooLarge(NetraError):
    """The request line and headers exceed the configured limit."""

    status = 431
    type = "invalid_request_error"
    default_code = "headers_too_large"


class RateLimited(NetraError):
    """The tenant's hourly request budget is spent."""

    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class QuotaExceeded(NetraError):
    """The tenant's spend budget is spent; retrying will not help."""

    status = 429
    type = "insufficient_quota"
    default_code = "insufficient_quota"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("x-should-retry", "false")


class UpstreamRejected(NetraError):
    """The provider rejected the request itself (a 4xx); status and envelope pass through."""

    type = "invalid_request_error"
    default_code = "upstream_rejected"

    def __init__(self, status: int, message: str, *, etype: str | None, code: str | None, param: str | None) -> None:
        super().__init__(message, code=code, param=param, status=status)
        self._etype = etype or "invalid_request_error"

    @property
    def error_type(self) -> str:
        """The provider's own error type."""
        return self._etype

    def envelope(self) -> dict[str, Any]:
        """The provider's envelope, with its code kept as it was (possibly null)."""
        env = super().envelope()
        env["error"]["code"] = None if self.code == self.default_code else self.code
        return env


class UpstreamFailed(NetraError):
    """The provider failed (5xx, garbage) or rejected our credential."""

    status = 502
    default_code = "upstream_error"


class ServiceUnavailable(NetraError):
    """Netra cannot serve the call right now; retrying later may work."""

    status = 503
    default_code = "upstream_unavailable"


class UpstreamTimeout(NetraError):
    """The provider did not answer in time."""

    status = 504
    default_code = "upstream_timeout"
