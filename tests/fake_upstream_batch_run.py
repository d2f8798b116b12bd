"""What OpenAI Batches and Anthropic Message Batches share in the fake: the clock, the book, running one request.

A batch finishes when ``fake.batch_delay`` seconds (default 0) have passed since it was created, found out when it is
next looked at (retrieve, list, cancel, results); ``fake.hold_batches()`` keeps every open batch running until
``fake.complete_batches()`` finishes them all at once. Requests inside a batch are answered by the same functions as
live requests, so model-name behaviours apply (``…-error-400`` fails its line). Results come back in reverse order of
the input, as real providers promise no order: match them by ``custom_id``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from tests.fake_upstream_behaviour import behaviour_for
from tests.fake_upstream_dialects import JSON
from tests.fake_upstream_files import FileStore
from tests.fake_upstream_http import Endpoint, parse_json
from tests.fake_upstream_wire import Wire, wire_named


class Batch(Protocol):
    """A batch of either provider: it finishes when its time comes, or when forced."""

    @property
    def id(self) -> str:
        """The batch id."""
        ...

    def advance(self, book: BatchBook, force: bool) -> None:
        """Move on as far as the clock (or ``force``) allows."""
        ...


@dataclass(slots=True)
class BatchBook:
    """Every batch by id, the clock settings, and where batch output files go."""

    files: FileStore
    wire: Wire
    delay: float = 0.0
    held: bool = False
    batches: dict[str, Batch] = field(default_factory=dict)

    def due(self, started: float) -> bool:
        """Whether a batch started at ``started`` (monotonic seconds) has run long enough to finish."""
        return not self.held and time.monotonic() - started >= self.delay

    def add(self, batch: Batch) -> None:
        """Keep a new batch."""
        self.batches[batch.id] = batch

    def complete_all(self) -> None:
        """Finish every open batch now, held or not."""
        for batch in self.batches.values():
            batch.advance(self, True)

    def advance_all(self) -> None:
        """Let every batch move on as the clock allows (before a list is answered)."""
        for batch in self.batches.values():
            batch.advance(self, False)


def payload(response: web.Response) -> dict[str, Any]:
    """The JSON body of an answer the dialects built (their errors)."""
    assert isinstance(response.body, bytes)
    parsed: dict[str, Any] = orjson.loads(response.body)
    return parsed


def run_request(endpoint: Endpoint, body: Any) -> tuple[int, dict[str, Any]]:
    """Answer one batched request as the live endpoint would: (HTTP status, JSON body)."""
    dialect = endpoint.dialect
    if not isinstance(body, dict):
        return 400, payload(dialect.invalid("The body must be a JSON object.", None, None))
    missing = next((name for name in ("model", *endpoint.required) if name not in body), None)
    if missing is not None:
        return 400, payload(dialect.missing(missing))
    model = str(body["model"])
    behaviour = behaviour_for(model)
    status = behaviour.error_status or (dialect.overloaded_status if behaviour.overloaded else None)
    if status is not None:
        return status, payload(dialect.error(status, model))
    return 200, endpoint.answer(body, model, behaviour)


def jsonl(records: list[dict[str, Any]], wire: Wire) -> bytes:
    """Records as JSON Lines in the wire's layout: its spacing and key order (one line each, even for the multi-line
    layout), CRLF line ends where the wire uses them, a line end after the last record."""
    flat = wire_named("spaced") if wire.multiline else wire
    newline = b"\r\n" if wire.newline == b"\r\n" else b"\n"
    return b"".join(flat.json(record) + newline for record in records)


def lines_of(content: bytes) -> list[bytes]:
    """The non-blank lines of a JSONL file, whatever its line ends."""
    return [line for line in content.splitlines() if line.strip()]


def control_route(book: BatchBook) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``POST /_fake/batches`` with ``{"delay"?: seconds, "hold"?: bool, "complete"?: true}``: the batch clock
    steered from outside the process; answers the settings in force."""

    async def control(request: web.Request) -> web.Response:
        fields = parse_json(await request.read())
        fields = fields if isinstance(fields, dict) else {}
        delay, hold = fields.get("delay", book.delay), fields.get("hold", book.held)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not isinstance(hold, bool):
            refusal = b'{"ok":false,"error":"delay is seconds, hold a boolean"}'
            return web.Response(status=400, body=refusal, content_type=JSON)
        book.delay, book.held = float(delay), hold
        if fields.get("complete") is True:
            book.complete_all()
        return web.Response(body=orjson.dumps({"ok": True, "delay": book.delay, "hold": book.held}), content_type=JSON)

    return control
