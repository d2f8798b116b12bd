"""What became of one deferred request at the provider, in the shape the synchronous path would have answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from core.deferred_models import COMPLETED, EXPIRED, FAILED
from core.errors import NetraError, UpstreamFailed, UpstreamTimeout
from core.usage import Usage


@dataclass(frozen=True, slots=True)
class Outcome:
    """A request's result: a response body (completed) or the error a synchronous call would have returned."""

    status: str  # completed, failed or expired
    body: dict[str, Any] | None = None
    usage: Usage | None = None
    error: NetraError | None = None


@dataclass(frozen=True, slots=True)
class BatchState:
    """Where the provider is with a batch; once ended, what requests without a result line become."""

    ended: bool
    provider_status: str
    completed: int = 0
    failed: int = 0
    files: tuple[str, ...] = ()  # result files to read (OpenAI/Azure: output and error files)
    leftover: Outcome | None = None
    batch_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def completed(body: dict[str, Any], usage: Usage | None) -> Outcome:
    """A request answered normally."""
    return Outcome(COMPLETED, body=body, usage=usage)


def failed(error: NetraError) -> Outcome:
    """A request the provider refused or failed, with the error a synchronous call would have returned."""
    return Outcome(FAILED, error=error)


def expired() -> Outcome:
    """A request the provider never ran before the batch's completion window closed."""
    error = UpstreamTimeout(
        "The provider's batch window ended before this request was run; send it again.", code="batch_expired"
    )
    return Outcome(EXPIRED, error=error)


def batch_refused(message: str) -> Outcome:
    """A request in a batch the provider refused as a whole (validation failed, cancelled)."""
    return failed(UpstreamFailed(f"The provider did not run the batch: {message}", code="upstream_error"))


def error_fields(error: NetraError) -> tuple[str, int, str]:
    """(envelope JSON, HTTP status, code) of an error, as stored."""
    return orjson.dumps(error.envelope()).decode(), error.status_code, error.code or ""


def ledger_status(status: str, error_status: int) -> str:
    """The ledger status of a finished deferred request (the synchronous path's, for the same answer)."""
    if status == COMPLETED:
        return "ok"
    if 400 <= error_status < 500 and error_status != 429:
        return "upstream_rejected"
    return "upstream_error"
