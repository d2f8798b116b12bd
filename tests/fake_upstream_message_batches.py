"""Anthropic Message Batches as the fake upstream serves them: create, retrieve, list, results, cancel, delete.

``POST /v1/messages/batches`` takes ``{"requests": [{"custom_id", "params"}]}``; each ``params`` is checked only when
the batch runs, as Anthropic does, so a bad one becomes an ``errored`` result. A batch is ``in_progress`` until its
time comes (``tests/fake_upstream_batch_run.py``), then ``ended`` with a ``results_url``; cancelling makes it
``canceling`` and then ``ended`` with every request ``canceled``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from tests.fake_upstream_batch_run import BatchBook, jsonl, run_request
from tests.fake_upstream_behaviour import next_id
from tests.fake_upstream_dialects import JSON, AnthropicDialect
from tests.fake_upstream_files import guarded, limit_of
from tests.fake_upstream_http import INVALID_JSON, Endpoint, UpstreamState, json_response, parse_json

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_REQUESTS = 100_000
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")


def rfc3339(moment: datetime | None) -> str | None:
    """A UTC time as Anthropic writes it (``2024-08-20T18:37:24.100435Z``)."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def requests_problem(requests: Any) -> str | None:
    """Why a create request's ``requests`` is refused outright, or None."""
    if not isinstance(requests, list) or not requests:
        return "requests: List should have at least 1 item after validation"
    if len(requests) > MAX_REQUESTS:
        return f"requests: List should have at most {MAX_REQUESTS} items"
    seen: set[str] = set()
    for index, item in enumerate(requests):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not CUSTOM_ID.match(custom_id):
            return f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        if custom_id in seen:
            return f"Duplicate custom_id values are not allowed: {custom_id}"
        if not isinstance(item.get("params"), dict):
            return f"requests.{index}.params: Input should be a valid dictionary"
        seen.add(custom_id)
    return None


@dataclass(slots=True, eq=False)
class MessageBatch:
    """One Anthropic message batch and its results once ended."""

    id: str
    answerer: Endpoint
    requests: list[dict[str, Any]]
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    processing_status: str = "in_progress"
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def advance(self, book: BatchBook, force: bool) -> None:
        """End a cancellation, or run every request when due (or forced)."""
        if self.processing_status == "ended":
            return
        if self.processing_status == "canceling":
            self._end([{"custom_id": item["custom_id"], "result": {"type": "canceled"}} for item in self.requests])
        elif force or book.due(self.started):
            self._end([self._result(item) for item in self.requests])

    def _result(self, item: dict[str, Any]) -> dict[str, Any]:
        status, body = run_request(self.answerer, item["params"])
        result = {"type": "succeeded", "message": body} if status == 200 else {"type": "errored", "error": body}
        return {"custom_id": item["custom_id"], "result": result}

    def _end(self, results: list[dict[str, Any]]) -> None:
        self.results = results[::-1]  # no order is promised: match by custom_id
        self.processing_status, self.ended_at = "ended", datetime.now(UTC)

    def cancel(self) -> None:
        """Start cancelling a batch still in progress."""
        if self.processing_status == "in_progress":
            self.processing_status, self.cancel_initiated_at = "canceling", datetime.now(UTC)

    def counts(self) -> dict[str, int]:
        """Requests by outcome; all of them processing until the batch ends."""
        counts = dict.fromkeys(RESULT_TYPES, 0)
        for record in self.results:
            counts[record["result"]["type"]] += 1
        return {"processing": 0 if self.results else len(self.requests), **counts}

    def to_dict(self, base_url: str) -> dict[str, Any]:
        """The MessageBatch object; ``base_url`` is where its results are fetched from."""
        ended = self.processing_status == "ended"
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.processing_status,
            "request_counts": self.counts(),
            "ended_at": rfc3339(self.ended_at),
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.created_at + timedelta(hours=24)),
            "archived_at": None,
            "cancel_initiated_at": rfc3339(self.cancel_initiated_at),
            "results_url": f"{base_url}/v1/messages/batches/{self.id}/results" if ended else None,
        }


def _error(dialect: AnthropicDialect, status: int, kind: str, message: str) -> web.Response:
    payload = {"type": "error", "error": {"type": kind, "message": message}}
    headers = {dialect.request_id_header: next_id("req_fake")}
    return web.Response(status=status, body=orjson.dumps(payload), content_type=JSON, headers=headers)


class MessageBatchRoutes:
    """The Message Batches endpoints."""

    def __init__(self, state: UpstreamState, book: BatchBook, answerer: Endpoint, dialect: AnthropicDialect) -> None:
        self.state, self.book, self.answerer, self.dialect = state, book, answerer, dialect

    def register(self, app: web.Application) -> None:
        """Add the routes under ``/v1/messages/batches``."""
        prefix, dialect, state = "/v1/messages/batches", self.dialect, self.state
        app.router.add_post(prefix, guarded(state, self.create, dialect))
        app.router.add_get(prefix, guarded(state, self.list, dialect))
        app.router.add_get(prefix + "/{batch_id}", guarded(state, self.retrieve, dialect))
        app.router.add_delete(prefix + "/{batch_id}", guarded(state, self.delete, dialect))
        app.router.add_get(prefix + "/{batch_id}/results", guarded(state, self.results, dialect))
        app.router.add_post(prefix + "/{batch_id}/cancel", guarded(state, self.cancel, dialect))

    def _answer(self, request: web.Request, batch: MessageBatch) -> web.Response:
        return json_response(batch.to_dict(str(request.url.origin())), self.dialect, self.state.wire)

    def _found(self, request: web.Request) -> MessageBatch | web.Response:
        batch_id = request.match_info["batch_id"]
        batch = self.book.batches.get(batch_id)
        if not isinstance(batch, MessageBatch):
            return _error(self.dialect, 404, "not_found_error", f"No batch found with id '{batch_id}'.")
        batch.advance(self.book, False)
        return batch

    async def create(self, request: web.Request, dialect: AnthropicDialect) -> web.StreamResponse:
        """Create a batch of Messages requests."""
        body = parse_json(await request.read())
        if not isinstance(body, dict):
            return dialect.invalid(INVALID_JSON, None, None)
        problem = requests_problem(body.get("requests"))
        if problem is not None:
            return dialect.invalid(problem, "requests", None)
        batch = MessageBatch(next_id("msgbatch_fake"), self.answerer, body["requests"])
        self.book.add(batch)
        return self._answer(request, batch)

    async def retrieve(self, request: web.Request, dialect: AnthropicDialect) -> web.StreamResponse:
        """One MessageBatch, moved on as the clock allows."""
        found = self._found(request)
        return found if isinstance(found, web.Response) else self._answer(request, found)

    async def cancel(self, request: web.Request, dialect: AnthropicDialect) -> web.StreamResponse:
        """Start cancelling; an ended batch cannot be cancelled."""
        found = self._found(request)
        if isinstance(found, web.Response):
            return found
        if found.processing_status == "ended":
            return _error(dialect, 400, "invalid_request_error", f"Batch {found.id} has already ended.")
        found.cancel()
        return self._answer(request, found)

    async def results(self, request: web.Request, dialect: AnthropicDialect) -> web.StreamResponse:
        """The results as JSON Lines, once the batch has ended."""
        found = self._found(request)
        if isinstance(found, web.Response):
            return found
        if found.processing_status != "ended":
            return _error(dialect, 400, "invalid_request_error", f"Batch {found.id} has not ended yet.")
        headers = {dialect.request_id_header: next_id("req_fake")}
        body = jsonl(found.results, self.state.wire)
        return web.Response(body=body, content_type="application/binary", headers=headers)

    async def delete(self, request: web.Request, dialect: AnthropicDialect) -> web.StreamResponse:
        """Forget an ended batch."""
        found = self._found(request)
        if isinstance(found, web.Response):
            return found
        if found.processing_status != "ended":
            return _error(dialect, 400, "invalid_request_error", f"Batch {found.id} is still in progress.")
        del self.book.batches[found.id]
        return json_response({"id": found.id, "type": "message_batch_deleted"}, dialect, self.state.wire)

    async def list(self, request: web.Request, dialect: AnthropicDialect) -> web.StreamResponse:
        """Batches newest first, paged by ``limit`` with ``after_id`` or ``before_id``."""
        self.book.advance_all()
        batches = [batch for batch in self.book.batches.values() if isinstance(batch, MessageBatch)][::-1]
        ids, limit = [batch.id for batch in batches], limit_of(request, 20, 1000)
        before, after = request.query.get("before_id"), request.query.get("after_id")
        if before in ids:
            end = ids.index(before)
            chosen, more = batches[max(0, end - limit) : end], end - limit > 0
        else:
            start = ids.index(after) + 1 if after in ids else 0
            chosen, more = batches[start : start + limit], start + limit < len(batches)
        data = [batch.to_dict(str(request.url.origin())) for batch in chosen]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        listed = {"data": data, "has_more": more, "first_id": first, "last_id": last}
        return json_response(listed, dialect, self.state.wire)
