"""The seam every provider adapter implements, and the translation of transport failures into our errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from core.config import ModelConfig, ProviderConfig
from core.errors import (
    NetraError,
    ServiceUnavailable,
    UpstreamFailed,
    UpstreamRejected,
    UpstreamTimeout,
)
from core.usage import Usage
from gateway.providers.failures import parse_retry_after, provider_hint

DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(slots=True)
class UpstreamCall:
    """One call to send upstream: the client's body with the model already resolved."""

    endpoint: str
    body: dict[str, Any]
    model: ModelConfig
    stream: bool
    request_id: str
    include_usage: bool = False


@dataclass(slots=True)
class UpstreamReply:
    """A complete (non-streaming) answer, ready for the client."""

    body: bytes
    usage: Usage | None
    status: int = 200
    # Generated characters, measured only when the provider reported no usage (the ledger's estimate).
    completion_chars: int = 0
    content_type: bytes = b"application/json"
    # The deployment that answered (upstream model, provider, configured name), for requests sharing the reply.
    served: tuple[str, str, str] | None = None


class UpstreamStream(Protocol):
    """An answer being streamed: SSE events for the client, usage once the stream has ended."""

    @property
    def usage(self) -> Usage | None:
        """Tokens the provider reported, once it reported them."""
        ...

    @property
    def completion_chars(self) -> int:
        """Characters of generated text relayed so far (for estimates when no usage arrives)."""
        ...

    @property
    def error_code(self) -> str:
        """The code of the failure that ended the stream, or empty."""
        ...

    def events(self) -> AsyncIterator[bytes]:
        """Client-ready SSE bytes (`data: …\\n\\n`, possibly several events), ending with `data: [DONE]`."""
        ...

    async def aclose(self) -> None:
        """Release the upstream connection (cancels the upstream call if still running)."""


class Provider(Protocol):
    """One upstream account of some kind; adapters get their config and the shared HTTP session."""

    config: ProviderConfig

    def supports(self, endpoint: str) -> bool:
        """Whether this provider can serve the endpoint (e.g. `embeddings`)."""
        ...

    def reconfigure(self, config: ProviderConfig) -> None:
        """Use a new credential and base URL from the next request on (gateway/credential_holder.py)."""
        ...

    def encode(self, call: UpstreamCall) -> bytes:
        """The body sent upstream; a body the provider cannot take is a 400 here, before any attempt."""
        ...

    async def send(self, call: UpstreamCall, body: bytes | None = None) -> UpstreamReply:
        """Make a non-streaming call (with the encoded body, or encoding it now)."""
        ...

    async def open_stream(self, call: UpstreamCall, body: bytes | None = None) -> UpstreamStream:
        """Start a streaming call; errors before the first event raise, later ones arrive in-band."""
        ...


def sse_event(payload: dict[str, Any]) -> bytes:
    """One SSE data event."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_event(error: NetraError) -> bytes:
    """The in-band error event of a stream that failed after it started, followed by [DONE]."""
    return b"data: " + error.body() + b"\n\n" + DONE_EVENT


def stream_ended_early() -> UpstreamFailed:
    """The failure of a stream the provider ended (cleanly, at EOF) before its last event."""
    return UpstreamFailed("The provider ended the stream early.", code="upstream_error")


def parse_error_body(body: bytes) -> dict[str, Any]:
    """The `error` object of an OpenAI-style error body, or {} if there is none."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return error
    if isinstance(error, str):
        return {"message": error}
    return {}


def error_from_status(status: int, body: bytes, headers: Any = None) -> NetraError:
    """Map a provider's non-2xx answer to our error: request problems pass through, the rest become 5xx."""
    error = parse_error_body(body)
    message = str(error.get("message") or f"upstream answered HTTP {status}")
    if status in (401, 403):
        return UpstreamFailed("The provider rejected Netra's credential for this model.", code="upstream_auth_error")
    if status == 429:
        overloaded = ServiceUnavailable(
            "The provider is rate limiting or overloaded; retry shortly.", code="upstream_overloaded"
        )
        return provider_hint(overloaded, headers)
    if 400 <= status < 500:
        code = error.get("code")
        param = error.get("param")
        return UpstreamRejected(
            status, message, etype=str(error.get("type") or "invalid_request_error"),
            code=str(code) if code is not None else None, param=str(param) if param is not None else None,
        )
    failed = UpstreamFailed(f"The provider failed (HTTP {status}).", code="upstream_error")
    failed.provider_retry_after = parse_retry_after(headers)  # a 503 may say when to come back
    return failed


@contextmanager
def map_errors(provider: str) -> Iterator[None]:
    """Turn transport failures talking to a provider into our error tree."""
    try:
        yield
    except NetraError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(f"The provider {provider} did not answer in time.") from exc
    except aiohttp.ClientConnectorError as exc:
        raise ServiceUnavailable(f"Cannot reach the provider {provider}.", code="upstream_unavailable") from exc
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        raise UpstreamFailed(f"The connection to the provider {provider} failed.", code="upstream_error") from exc
