"""OpenAI and Azure OpenAI Batch API: upload a JSONL file of requests, create a batch, poll it, read its files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
import orjson

from core.config import ProviderConfig
from core.deferred_models import DeferredJob, DeferredRequest
from core.errors import UpstreamFailed
from gateway.deferred.http import BatchHTTP, count, jsonl_objects, obj
from gateway.deferred.outcome import BatchState, Outcome, batch_refused, completed, expired, failed
from gateway.providers.base import error_from_status
from gateway.providers.openai_stream import usage_from_openai

COMPLETION_WINDOW = "24h"
ENDED = frozenset({"completed", "expired", "cancelled", "failed"})
# Batches listed when looking for one a dead process created (the newest first).
LIST_LIMIT = 100


class OpenAIBatches:
    """Files and batches at an OpenAI-compatible base URL (ending in /v1), with a bearer key."""

    line_prefix = "/v1/"

    def __init__(self, config: ProviderConfig, http: BatchHTTP) -> None:
        self.config = config
        self.http = http
        self.base = config.resolved_base_url
        self.auth = self.auth_headers()

    def auth_headers(self) -> dict[str, str]:
        """The provider's credential and configured headers, as the chat adapter sends them."""
        headers = dict(self.config.headers)
        if self.config.api_key is not None:
            headers["authorization"] = f"Bearer {self.config.api_key.get_secret_value()}"
        return headers

    def url(self, path: str) -> str:
        """The URL of a files or batches path."""
        return f"{self.base}/{path}"

    def line(self, request: DeferredRequest) -> bytes:
        """One request of the input file; custom_id is the deferred id."""
        body = {**orjson.loads(request.body), "model": request.upstream_model}
        url = self.line_prefix + request.endpoint
        return orjson.dumps({"custom_id": request.id, "method": "POST", "url": url, "body": body})

    async def create(
        self, job: DeferredJob, requests: Sequence[DeferredRequest], on_file: Callable[[str], Awaitable[None]]
    ) -> str:
        """Upload the requests and create the batch; the file id is recorded (on_file) before the batch exists."""
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        data = b"\n".join(self.line(request) for request in requests) + b"\n"
        form.add_field("file", data, filename=f"{job.id}.jsonl", content_type="application/jsonl")
        uploaded = await self.http.json("POST", self.url("files"), self.auth, form)
        file_id = str(uploaded.get("id") or "")
        if not file_id:
            raise UpstreamFailed("The provider accepted the batch file without naming it.")
        await on_file(file_id)
        job.input_file_id = file_id
        return await self._create_batch(job)

    async def _create_batch(self, job: DeferredJob) -> str:
        payload = {
            "input_file_id": job.input_file_id, "endpoint": self.line_prefix + job.endpoint,
            "completion_window": COMPLETION_WINDOW, "metadata": {"netra_job": job.id},
        }
        headers = {**self.auth, "content-type": "application/json"}
        batch = await self.http.json("POST", self.url("batches"), headers, orjson.dumps(payload))
        batch_id = str(batch.get("id") or "")
        if not batch_id:
            raise UpstreamFailed("The provider created a batch without naming it.")
        return batch_id

    async def find(self, job: DeferredJob, known: set[str]) -> str | None:
        """The batch a dead process created for this job, if it got that far (its input file names it)."""
        if job.input_file_id is None:
            return None  # the batch is created only after its file is recorded
        listing = await self.http.json("GET", self.url(f"batches?limit={LIST_LIMIT}"), self.auth)
        for batch in listing.get("data") or ():
            batch = obj(batch)
            named = obj(batch.get("metadata")).get("netra_job") == job.id
            ours = named or batch.get("input_file_id") == job.input_file_id
            if ours and str(batch.get("id")) not in known:
                return str(batch.get("id"))
        return None

    async def status(self, batch_id: str) -> BatchState:
        """Where the batch is: counts while it runs; its result files and the fate of missing lines once ended."""
        batch = await self.http.json("GET", self.url(f"batches/{batch_id}"), self.auth)
        status = str(batch.get("status") or "")
        counts = obj(batch.get("request_counts"))
        files = tuple(str(batch[name]) for name in ("output_file_id", "error_file_id") if batch.get(name))
        return BatchState(
            ended=status in ENDED, provider_status=status, completed=count(counts.get("completed")),
            failed=count(counts.get("failed")), files=files, leftover=_leftover(status, batch), batch_id=batch_id,
        )

    async def results(self, state: BatchState, models: Mapping[str, str]) -> dict[str, Outcome]:
        """Every result line of the batch's files, by custom_id (the deferred id)."""
        outcomes: dict[str, Outcome] = {}
        for file_id in state.files:
            body = await self.http.call("GET", self.url(f"files/{file_id}/content"), self.auth)
            for item in jsonl_objects(body):
                custom_id = str(item.get("custom_id") or "")
                if custom_id in models:
                    outcomes[custom_id] = line_outcome(item)
        return outcomes


def _leftover(status: str, batch: dict[str, Any]) -> Outcome:
    """What a request with no result line became: the batch expired (or was cancelled) or was refused whole."""
    if status == "failed":
        errors = [obj(e).get("message") for e in obj(batch.get("errors")).get("data") or ()]
        return batch_refused("; ".join(str(m) for m in errors if m) or "the batch failed validation")
    return expired()


def line_outcome(item: dict[str, Any]) -> Outcome:
    """One output or error line: the response body as the synchronous call returns it, or its error."""
    response = obj(item.get("response"))
    error = obj(item.get("error"))
    status = response.get("status_code")
    body = response.get("body")
    if isinstance(status, int) and status < 300 and isinstance(body, dict):
        return completed(body, usage_from_openai(body.get("usage")))
    if isinstance(status, int) and status >= 400:
        return failed(error_from_status(status, orjson.dumps(body if body is not None else {})))
    if error.get("code") == "batch_expired":
        return expired()
    message = str(error.get("message") or "the provider returned no result for this request")
    return failed(UpstreamFailed(f"The provider failed this request: {message}", code="upstream_error"))


class AzureBatches(OpenAIBatches):
    """Azure OpenAI: /openai paths with an api-version, an api-key header, deployment names as models."""

    line_prefix = "/"
    default_api_version = "2024-10-21"

    def __init__(self, config: ProviderConfig, http: BatchHTTP) -> None:
        super().__init__(config, http)
        self.base = self.base if self.base.endswith("/openai") else f"{self.base}/openai"

    def auth_headers(self) -> dict[str, str]:
        """Azure wants the key in an api-key header."""
        headers = dict(self.config.headers)
        if self.config.api_key is not None:
            headers["api-key"] = self.config.api_key.get_secret_value()
        return headers

    def url(self, path: str) -> str:
        """The path under /openai with the api-version query parameter."""
        version = self.config.api_version or self.default_api_version
        joiner = "&" if "?" in path else "?"
        return f"{self.base}/{path}{joiner}api-version={version}"
