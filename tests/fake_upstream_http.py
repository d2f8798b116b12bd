"""The fake upstream's HTTP side: request recording, the generic provider handler and the SSE writer."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from aiohttp import web

from tests.fake_upstream_behaviour import Behaviour, Stream, behaviour_for, next_id
from tests.fake_upstream_dialects import JSON, Dialect
from tests.fake_upstream_failures import MIDSTREAM, Failure, FailureBook, cut_short
from tests.fake_upstream_wire import SPLIT_PAUSE_S, Wire, wire_named

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = Callable[[dict[str, Any], str, Behaviour], dict[str, Any]]
Streamer = Callable[[dict[str, Any], str, Behaviour], Stream]
# Why the provider refuses a well-formed body (message, param), or None: e.g. an embedding input over the model's limit.
Refusal = Callable[[dict[str, Any]], tuple[str, str | None] | None]
INVALID_JSON = "We could not parse the JSON body of your request."
_UNPARSED = object()


class RecordedRequest:
    """One request as the fake received it; ``json`` is the parsed body (None when absent or not JSON)."""

    __slots__ = ("_json", "body", "headers", "method", "path", "query")

    def __init__(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body
        self._json: Any = _UNPARSED

    @property
    def json(self) -> Any:
        """The body parsed on first access: raw bytes keep the garbage collector's work flat on long runs."""
        if self._json is _UNPARSED:
            self._json = parse_json(self.body)
        return self._json

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for ``GET /_fake/requests``."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
            "body": self.body.decode("utf-8", "replace"),
        }

    def __repr__(self) -> str:
        return f"RecordedRequest({self.method} {self.path}, {len(self.body)} bytes)"


def parse_json(raw: bytes) -> Any:
    """The JSON value of a body, or None when it is empty or not JSON."""
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


class UpstreamState:
    """What the fake remembers: recorded requests, stream outcomes, flaky turns."""

    def __init__(self, *, record: bool = True, wire: str = "compact") -> None:
        self.record = record
        self.wire = wire_named(wire)
        self.requests: list[RecordedRequest] = []
        self.request_count = 0
        self.cancelled_streams = 0
        self.completed_streams = 0
        self.flaky_turns: Counter[str] = Counter()
        self.failures = FailureBook()

    def reset(self) -> None:
        """Forget everything received so far (the request list is cleared in place)."""
        self.requests.clear()
        self.request_count = self.cancelled_streams = self.completed_streams = 0
        self.flaky_turns.clear()
        self.failures.reset()

    async def receive(self, request: web.Request) -> Any:
        """Read, parse and record a request; return its JSON body or None."""
        raw = await request.read()
        self.request_count += 1
        if self.record:
            headers = {name.lower(): value for name, value in request.headers.items()}
            self.requests.append(RecordedRequest(request.method, request.path, dict(request.query), headers, raw))
        return parse_json(raw)

    def wire_for(self, behaviour: Behaviour) -> Wire:
        """The layout of an answer: the model name's ``wire-<name>``, else the server's own."""
        return wire_named(behaviour.wire) if behaviour.wire else self.wire

    def flaky_fails(self, model: str) -> bool:
        """Whether this request to a flaky model fails: odd-numbered ones do, so a retry succeeds."""
        self.flaky_turns[model] += 1
        return self.flaky_turns[model] % 2 == 1

    def stats(self) -> dict[str, int]:
        """Counters for ``GET /_fake/stats``."""
        return {
            "cancelled_streams": self.cancelled_streams,
            "completed_streams": self.completed_streams,
            "requests": self.request_count,
        }


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider endpoint: who it speaks as, what it requires, how it answers and streams."""

    dialect: Dialect
    required: tuple[str, ...]
    answer: Answer
    stream: Streamer | None = None
    refuse: Refusal | None = None


def json_response(payload: Any, dialect: Dialect, wire: Wire) -> web.Response:
    """A 200 JSON answer in the wire's layout, with the provider's request id header."""
    headers = {dialect.request_id_header: next_id("req_fake")}
    return web.Response(body=wire.json(payload), content_type=JSON, headers=headers)


def _abort(request: web.Request) -> None:
    """Drop the connection mid-body: the client sees a truncated chunked stream, no [DONE]."""
    if request.transport is not None:
        request.transport.close()


class ProviderHandlers:
    """The request handlers shared by every provider endpoint."""

    def __init__(self, state: UpstreamState) -> None:
        self.state = state

    def route(self, endpoint: Endpoint) -> Handler:
        """An aiohttp handler serving one endpoint."""

        async def handler(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, endpoint)

        return handler

    async def handle(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        """Record, count, authenticate, validate, apply a switched failure, then answer as the model name asks."""
        body = await self.state.receive(request)
        dialect = endpoint.dialect
        model = request.match_info.get("deployment") or (body.get("model") if isinstance(body, dict) else None)
        if model:
            self.state.failures.count(str(model))
        if not dialect.authorised(request):
            return dialect.unauthorised()
        if not isinstance(body, dict):
            return dialect.invalid(INVALID_JSON, None, "invalid_json")
        missing = next((field for field in endpoint.required if field not in body), None) if model else "model"
        if missing:
            return dialect.missing(missing)
        behaviour = behaviour_for(str(model))
        switched = self.state.failures.take(str(model))
        if switched is not None:
            outcome = await self.switched(request, endpoint, body, switched, behaviour)
            if isinstance(outcome, web.StreamResponse):
                return outcome
            behaviour = outcome
        if body.get("stream") is True and endpoint.stream is not None:
            return await self.stream(request, endpoint, body, str(model), behaviour)
        failure = await self.misbehave(dialect, str(model), behaviour)
        refusal = endpoint.refuse(body) if endpoint.refuse is not None and failure is None else None
        if refusal is not None:
            return dialect.invalid(refusal[0], refusal[1], None)
        answer = endpoint.answer(body, str(model), behaviour)
        return failure or json_response(answer, dialect, self.state.wire_for(behaviour))

    async def switched(
        self, request: web.Request, endpoint: Endpoint, body: dict[str, Any], failure: Failure, behaviour: Behaviour
    ) -> web.StreamResponse | Behaviour:
        """Fail as switched on by ``fake.fail``; a ``midstream`` stream goes on as a ``midstream-fail`` model's."""
        model = str(request.match_info.get("deployment") or body["model"])
        if failure.mode != MIDSTREAM:
            return await self.state.failures.inflict(request, failure, endpoint.dialect, model)
        if body.get("stream") is True and endpoint.stream is not None:
            return replace(behaviour, midstream_fail=True)
        answer = self.state.wire_for(behaviour).json(endpoint.answer(body, model, behaviour))
        return await cut_short(request, answer, {endpoint.dialect.request_id_header: next_id("req_fake")})

    async def models(self, request: web.Request, dialect: Dialect, body: bytes) -> web.StreamResponse:
        """A fixed, authenticated GET answer (the model list or one model)."""
        await self.state.receive(request)
        if not dialect.authorised(request):
            return dialect.unauthorised()
        return web.Response(body=body, content_type=JSON, headers={dialect.request_id_header: next_id("req_fake")})

    async def misbehave(self, dialect: Dialect, model: str, behaviour: Behaviour) -> web.Response | None:
        """Wait and fail as the model name asks; None when the request should be answered normally."""
        failing = behaviour.flaky and self.state.flaky_fails(model)
        if behaviour.slow_s:
            await asyncio.sleep(behaviour.slow_s)
        status = 500 if failing else behaviour.error_status
        if status is None and behaviour.overloaded:
            status = dialect.overloaded_status
        if status is not None:
            return dialect.error(status, model)
        if behaviour.garbage:
            return web.Response(body=b"not json at all", content_type=JSON)
        return None

    async def stream(
        self, request: web.Request, endpoint: Endpoint, body: dict[str, Any], model: str, behaviour: Behaviour
    ) -> web.StreamResponse:
        """Answer a streaming request, counting it cancelled if the client leaves before the last frame."""
        assert endpoint.stream is not None
        try:
            failure = await self.misbehave(endpoint.dialect, model, behaviour)
            if failure is not None:
                return failure
            return await self.send(request, endpoint.stream(body, model, behaviour), behaviour, endpoint.dialect)
        except (ConnectionError, asyncio.CancelledError):
            self.state.cancelled_streams += 1
            raise

    async def send(
        self, request: web.Request, stream: Stream, behaviour: Behaviour, dialect: Dialect
    ) -> web.StreamResponse:
        """Write the frames: all at once, dripped, split into awkward pieces, or cut short (``midstream-fail``
        aborts the connection, ``truncated`` ends the response cleanly)."""
        headers = {"cache-control": "no-cache", dialect.request_id_header: next_id("req_fake")}
        response = web.StreamResponse(headers=headers)
        response.content_type = "text/event-stream"
        await response.prepare(request)
        wire = self.state.wire_for(behaviour)
        short = behaviour.midstream_fail or behaviour.truncated
        events = wire.body(stream.frames[: stream.fail_after] if short else stream.frames)
        if behaviour.midstream_fail:
            await response.write(b"".join(events))
            _abort(request)
            return response
        if behaviour.drip_s or wire.split:
            pieces = [piece for event in events for piece in wire.writes(event)]
            await self._drip(response, pieces, behaviour.drip_s or SPLIT_PAUSE_S)
        else:
            await response.write_eof(b"".join(events))  # headers, body and last chunk in one send
        self.state.completed_streams += 1
        return response

    @staticmethod
    async def _drip(response: web.StreamResponse, pieces: list[bytes], pause_s: float) -> None:
        for index, piece in enumerate(pieces):
            if index:
                await asyncio.sleep(pause_s)
            await response.write(piece)
