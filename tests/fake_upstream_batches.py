"""The OpenAI Batches API as the fake upstream serves it: create, retrieve, list, cancel.

A batch reads a ``purpose=batch`` JSONL file of ``{"custom_id", "method": "POST", "url", "body"}`` lines. It is
``validating`` when created; when next looked at it is ``failed`` (with ``errors``) if a line is malformed, else
``in_progress`` until its time comes (``tests/fake_upstream_batch_run.py``), then ``completed`` with an output file
(lines answered 200) and an error file (the other lines, with their provider error bodies). Cancelling makes it
``cancelling``, then ``cancelled``. Served at ``/v1/batches`` and, for Azure, ``/openai/batches``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_upstream_batch_run import BatchBook, jsonl, run_request
from tests.fake_upstream_behaviour import next_id
from tests.fake_upstream_dialects import AzureDialect, OpenAIDialect
from tests.fake_upstream_files import FileStore, guarded, limit_of, list_body, page
from tests.fake_upstream_http import INVALID_JSON, Endpoint, UpstreamState, json_response, parse_json

DAY_S = 24 * 60 * 60
OPEN = ("validating", "in_progress")
FINAL = ("completed", "failed", "cancelled", "expired")
STAMPS = ("in_progress", "finalizing", "completed", "failed", "expired", "cancelling", "cancelled")


def line_error(line: Any, url: str, seen: set[str]) -> tuple[str, str, str | None] | None:
    """What is wrong with one input line, as (code, message, param); None when it is well formed."""
    if not isinstance(line, dict):
        return "invalid_json_line", "This line is not parseable as valid JSON.", None
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id"
    if custom_id in seen:
        return "duplicate_custom_id", "The custom_id for this request is a duplicate of another request.", "custom_id"
    seen.add(custom_id)
    if line.get("method") != "POST":
        return "invalid_method", "Only the POST method is supported for batch requests.", "method"
    if line.get("url") != url:
        return "invalid_url", f"The URL provided for this request does not match the batch endpoint {url}.", "url"
    if not isinstance(line.get("body"), dict):
        return "missing_required_parameter", "Missing required parameter: 'body'.", "body"
    return None


def read_lines(content: bytes, url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The requests of an input file and the validation errors found in it (line numbers count from 1)."""
    requests: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(content.splitlines(), 1):
        if not raw.strip():
            continue
        line = parse_json(raw)
        problem = line_error(line, url, seen)
        if problem is None:
            requests.append(line)
        else:
            errors.append({"code": problem[0], "message": problem[1], "param": problem[2], "line": number})
    if not requests and not errors:
        errors.append({"code": "empty_file", "message": "The batch input file is empty.", "param": None, "line": None})
    return requests, errors


@dataclass(slots=True, eq=False)
class OpenAIBatch:
    """One OpenAI batch and how far it has got."""

    id: str
    endpoint: str
    answerer: Endpoint
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    requests: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    created_at: int = field(default_factory=lambda: int(time.time()))
    started: float = field(default_factory=time.monotonic)
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    stamps: dict[str, int] = field(default_factory=dict)
    completed: int = 0
    failed: int = 0

    def _enter(self, status: str) -> None:
        self.status = status
        self.stamps.setdefault(f"{status}_at", int(time.time()))

    def advance(self, book: BatchBook, force: bool) -> None:
        """Fail on a malformed file, end a cancellation, else run and complete when due (or forced)."""
        if self.status in FINAL:
            return
        if self.status == "cancelling" or self.errors:
            self._enter("cancelled" if self.status == "cancelling" else "failed")
            return
        self._enter("in_progress")
        if force or book.due(self.started):
            self._run(book)

    def _run(self, book: BatchBook) -> None:
        done: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for request in self.requests:
            status, body = run_request(self.answerer, request["body"])
            response = {"status_code": status, "request_id": next_id("req_fake"), "body": body}
            record = {"id": next_id("batch_req_fake"), "custom_id": request["custom_id"], "response": response}
            (done if status == 200 else failed).append({**record, "error": None})
        self._enter("finalizing")
        self.completed, self.failed = len(done), len(failed)
        if done:
            self.output_file_id = self._write(book, "output", done)
        if failed:
            self.error_file_id = self._write(book, "error", failed)
        self._enter("completed")

    def _write(self, book: BatchBook, kind: str, records: list[dict[str, Any]]) -> str:
        """Store an output or error file (lines in reverse order: no order is promised) and return its id."""
        return book.files.add(f"{self.id}_{kind}.jsonl", "batch_output", jsonl(records[::-1], book.wire)).id

    def cancel(self) -> bool:
        """Start cancelling; False when the batch has already finished."""
        if self.status not in OPEN:
            return False
        self._enter("cancelling")
        return True

    def to_dict(self) -> dict[str, Any]:
        """The Batch object."""
        errors = {"object": "list", "data": self.errors} if self.status == "failed" else None
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            **{f"{stamp}_at": self.stamps.get(f"{stamp}_at") for stamp in STAMPS},
            "expires_at": self.created_at + DAY_S,
            "request_counts": {"total": len(self.requests), "completed": self.completed, "failed": self.failed},
            "metadata": self.metadata,
        }


class BatchRoutes:
    """The Batches endpoints for OpenAI and Azure OpenAI."""

    def __init__(
        self, state: UpstreamState, book: BatchBook, answerers: dict[str, Endpoint], dialects: list[OpenAIDialect]
    ) -> None:
        self.state, self.book, self.answerers, self.dialects = state, book, answerers, dialects

    @property
    def files(self) -> FileStore:
        """Where input files are read and output files written."""
        return self.book.files

    def register(self, app: web.Application) -> None:
        """Add the routes under ``/v1/batches`` and ``/openai/batches``."""
        for prefix, dialect in zip(("/v1/batches", "/openai/batches"), self.dialects, strict=True):
            app.router.add_post(prefix, guarded(self.state, self.create, dialect))
            app.router.add_get(prefix, guarded(self.state, self.list, dialect))
            app.router.add_get(prefix + "/{batch_id}", guarded(self.state, self.retrieve, dialect))
            app.router.add_post(prefix + "/{batch_id}/cancel", guarded(self.state, self.cancel, dialect))

    def _answerer(self, endpoint: Any, dialect: OpenAIDialect) -> str | None:
        """The OpenAI path answering a batch endpoint: Azure names it without ``/v1`` (``/chat/completions``)."""
        path = f"/v1{endpoint}" if isinstance(dialect, AzureDialect) and isinstance(endpoint, str) else endpoint
        return path if isinstance(path, str) and path in self.answerers else None

    def _refused(self, body: Any, dialect: OpenAIDialect) -> web.Response | None:
        """The 4xx a create request earns, or None when it can go ahead."""
        if not isinstance(body, dict):
            return dialect.invalid(INVALID_JSON, None, "invalid_json")
        missing = next((name for name in ("input_file_id", "endpoint", "completion_window") if name not in body), None)
        if missing is not None:
            return dialect.missing(missing)
        if self._answerer(body["endpoint"], dialect) is None:
            return dialect.invalid(f"Invalid value for 'endpoint': {body['endpoint']!r}.", "endpoint", "invalid_value")
        if body["completion_window"] != "24h":
            return dialect.invalid("Invalid value for 'completion_window'.", "completion_window", "invalid_value")
        if not isinstance(body.get("metadata") or {}, dict):
            return dialect.invalid("Invalid type for 'metadata': expected an object.", "metadata", "invalid_type")
        stored = self.files.files.get(str(body["input_file_id"]))
        if stored is None:
            return dialect.invalid(f"No such File object: {body['input_file_id']}", "input_file_id", None, status=404)
        if stored.purpose != "batch":
            return dialect.invalid("The input file must have purpose 'batch'.", "input_file_id", "invalid_value")
        return None

    async def create(self, request: web.Request, dialect: OpenAIDialect) -> web.StreamResponse:
        """Create a batch from an uploaded input file."""
        body = parse_json(await request.read())
        refused = self._refused(body, dialect)
        if refused is not None:
            return refused
        url, file_id = body["endpoint"], body["input_file_id"]
        answerer = self.answerers[self._answerer(url, dialect) or url]
        requests, errors = read_lines(self.files.files[file_id].content, url)
        metadata = body.get("metadata")
        batch = OpenAIBatch(next_id("batch_fake"), url, answerer, file_id, "24h", metadata, requests, errors)
        self.book.add(batch)
        return json_response(batch.to_dict(), dialect, self.state.wire)

    def _found(self, request: web.Request, dialect: OpenAIDialect) -> OpenAIBatch | web.Response:
        batch = self.book.batches.get(request.match_info["batch_id"])
        if not isinstance(batch, OpenAIBatch):
            message = f"No batch found with id '{request.match_info['batch_id']}'."
            return dialect.invalid(message, None, "not_found", status=404)
        batch.advance(self.book, False)
        return batch

    async def retrieve(self, request: web.Request, dialect: OpenAIDialect) -> web.StreamResponse:
        """One Batch object, moved on as the clock allows."""
        found = self._found(request, dialect)
        return found if isinstance(found, web.Response) else json_response(found.to_dict(), dialect, self.state.wire)

    async def cancel(self, request: web.Request, dialect: OpenAIDialect) -> web.StreamResponse:
        """Start cancelling an open batch; 400 for a finished one."""
        found = self._found(request, dialect)
        if isinstance(found, web.Response):
            return found
        if not found.cancel():
            return dialect.invalid(f"Cannot cancel a batch with status '{found.status}'.", None, None)
        return json_response(found.to_dict(), dialect, self.state.wire)

    async def list(self, request: web.Request, dialect: OpenAIDialect) -> web.StreamResponse:
        """Batches newest first, with ``limit`` and ``after``."""
        self.book.advance_all()
        batches = [batch for batch in self.book.batches.values() if isinstance(batch, OpenAIBatch)][::-1]
        chosen, more = page(batches, limit_of(request, 20, 100), request.query.get("after"))
        return json_response(list_body([batch.to_dict() for batch in chosen], more), dialect, self.state.wire)

