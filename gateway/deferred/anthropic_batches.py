"""Anthropic Message Batches: chat requests translated as the synchronous adapter does, results translated back."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson

from core.config import ProviderConfig
from core.deferred_models import DeferredJob, DeferredRequest
from core.errors import NetraError, UpstreamFailed
from gateway.deferred.http import BatchHTTP, count, jsonl_objects, obj
from gateway.deferred.outcome import BatchState, Outcome, batch_refused, completed, expired, failed
from gateway.providers.anthropic import ANTHROPIC_VERSION
from gateway.providers.anthropic_translate import error_from_anthropic, from_messages_response, to_messages_request

# Anthropic's error types and the HTTP statuses its API answers them with (for the per-request error).
_ERROR_STATUS = {
    "invalid_request_error": 400, "authentication_error": 401, "permission_error": 403, "not_found_error": 404,
    "request_too_large": 413, "rate_limit_error": 429, "api_error": 500, "overloaded_error": 529,
}
LIST_LIMIT = 100
# How much earlier than the job's record a batch may be stamped and still be its (clock skew between hosts), and
# how much later (a create runs at most the upstream total timeout after its job is recorded, plus the skew).
CLOCK_SKEW = timedelta(minutes=2)
LATEST_CREATE = timedelta(minutes=15)


def anthropic_error(status: int, body: bytes, headers: Any) -> NetraError:
    """An Anthropic error answer in our error tree."""
    return error_from_anthropic(status, body, headers.get("retry-after") if headers is not None else None)


class AnthropicBatches:
    """Message Batches at `{base_url}/v1/messages/batches`, with x-api-key and anthropic-version."""

    def __init__(self, config: ProviderConfig, http: BatchHTTP) -> None:
        self.config = config
        self.http = http
        self.url = f"{config.resolved_base_url}/v1/messages/batches"
        headers = {"anthropic-version": ANTHROPIC_VERSION, **config.headers}
        if config.api_key is not None:
            headers["x-api-key"] = config.api_key.get_secret_value()
        self.headers = headers

    @staticmethod
    def params(request: DeferredRequest) -> dict[str, Any]:
        """The Messages request for one chat request (checked when it was accepted)."""
        params = to_messages_request(orjson.loads(request.body), request.upstream_model)
        params.pop("stream", None)  # a batch never streams
        return params

    async def create(
        self, job: DeferredJob, requests: Sequence[DeferredRequest], on_file: Callable[[str], Awaitable[None]]
    ) -> str:
        """Create the message batch; custom_id is the deferred id (no file: on_file is not called)."""
        payload = {"requests": [{"custom_id": r.id, "params": self.params(r)} for r in requests]}
        headers = {**self.headers, "content-type": "application/json"}
        batch = await self.http.json("POST", self.url, headers, orjson.dumps(payload))
        batch_id = str(batch.get("id") or "")
        if not batch_id:
            raise UpstreamFailed("The provider created a message batch without naming it.")
        return batch_id

    async def find(self, job: DeferredJob, known: set[str]) -> str | None:
        """A batch a dead process created for this job: made after the job was recorded, with as many requests.

        Message batches carry no metadata of ours, so this is a match on time and size among batches no other
        job has; results are matched to requests by custom_id either way.
        """
        listing = await self.http.json("GET", f"{self.url}?limit={LIST_LIMIT}", self.headers)
        for batch in listing.get("data") or ():
            batch = obj(batch)
            batch_id = str(batch.get("id") or "")
            created = _when(batch.get("created_at"))
            fits = created is not None and job.created_at - CLOCK_SKEW <= created <= job.created_at + LATEST_CREATE
            if batch_id and batch_id not in known and fits and _total(batch) == job.request_count:
                return batch_id
        return None

    async def status(self, batch_id: str) -> BatchState:
        """Where the batch is; once ended, requests without a result line count as expired."""
        batch = await self.http.json("GET", f"{self.url}/{batch_id}", self.headers)
        status = str(batch.get("processing_status") or "")
        counts = obj(batch.get("request_counts"))
        failures = sum(count(counts.get(name)) for name in ("errored", "canceled", "expired"))
        return BatchState(
            ended=status == "ended", provider_status=status, completed=count(counts.get("succeeded")),
            failed=failures, leftover=expired(), batch_id=batch_id,
        )

    async def results(self, state: BatchState, models: Mapping[str, str]) -> dict[str, Outcome]:
        """Every result line, by custom_id, translated to what the synchronous chat path would have answered."""
        body = await self.http.call("GET", f"{self.url}/{state.batch_id}/results", self.headers)
        created = int(time.time())
        outcomes: dict[str, Outcome] = {}
        for item in jsonl_objects(body):
            custom_id = str(item.get("custom_id") or "")
            if custom_id in models:
                outcomes[custom_id] = result_outcome(obj(item.get("result")), models[custom_id], created)
        return outcomes


def result_outcome(result: dict[str, Any], model: str, created: int) -> Outcome:
    """One result: a chat.completion body (the requested model's name, as the adapter answers) or the error."""
    kind = result.get("type")
    if kind == "succeeded":
        completion, usage = from_messages_response(obj(result.get("message")), model, created)
        return completed(completion, usage if usage.reported else None)
    if kind == "errored":
        envelope = obj(result.get("error"))
        status = _ERROR_STATUS.get(str(obj(envelope.get("error")).get("type")), 500)
        return failed(error_from_anthropic(status, orjson.dumps(envelope)))
    if kind == "canceled":
        return batch_refused("the batch was cancelled")
    return expired()


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _total(batch: dict[str, Any]) -> int:
    counts = obj(batch.get("request_counts"))
    return sum(count(counts.get(name)) for name in ("processing", "succeeded", "errored", "canceled", "expired"))
