"""A fake LLM provider on loopback: the OpenAI, Azure OpenAI and Anthropic APIs, behaviour chosen by model name.

Tests and benchmarks point Netra's providers at it. Model-name behaviours (matched as substrings) are listed in
``tests/fake_upstream_behaviour.py``: ``error-<status>``, ``overloaded``, ``garbage``, ``flaky``, ``slow-<ms>``,
``drip-<ms>``, ``midstream-fail``, ``truncated``, ``no-usage``, ``cached``, ``tools``, ``wire-<layout>``; a last user
message ``echo: text`` is echoed. How JSON and SSE are laid out on the wire (compact, spaced, multi-line ``data:``,
CRLF, CR, split across writes) is ``FakeUpstream(wire=...)``, ``--wire``, or ``wire-<layout>`` in the model name: see
``tests/fake_upstream_wire.py``.

Failures switched at run time, per exact model (or deployment) name: ``fake.fail(model, 429, times=2, retry_after=1)``,
``"reset"``, ``"hang"``, ``"midstream"``, ``fake.heal()``, and ``fake.calls(model)`` counting the requests that reached
the fake: see ``tests/fake_upstream_failures.py``.

OpenAI Files (``/v1/files``, Azure ``/openai/files``) and Batches (``/v1/batches``, Azure ``/openai/batches``), and
Anthropic Message Batches (``/v1/messages/batches``): batched requests are answered like live ones (model-name
behaviours apply), and a batch finishes ``fake.batch_delay`` seconds after creation, when next looked at;
``fake.hold_batches()`` and ``fake.complete_batches()`` steer it; ``fake.files`` and ``fake.batches`` hold them. See
``tests/fake_upstream_files.py``, ``tests/fake_upstream_batches.py``, ``tests/fake_upstream_message_batches.py`` and
``tests/fake_upstream_batch_run.py``.

In-process::

    async with FakeUpstream() as fake:
        client = openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key=fake.api_key)

As a process: ``python -m tests.fake_upstream --port 9000``, inspected through ``GET /_fake/requests``,
``GET /_fake/stats``, ``GET /_fake/calls`` and ``POST /_fake/reset``; failures switched through ``POST``/``DELETE``
``/_fake/failures``; the batch clock through ``POST /_fake/batches``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from types import TracebackType

import orjson
from aiohttp import web

from tests.fake_upstream_anthropic import message, message_events
from tests.fake_upstream_batch_run import Batch, BatchBook, control_route
from tests.fake_upstream_batches import BatchRoutes
from tests.fake_upstream_chat import chat_chunks, chat_completion
from tests.fake_upstream_dialects import JSON, AnthropicDialect, AzureDialect, OpenAIDialect
from tests.fake_upstream_failures import FailureRoutes, RetryAfter
from tests.fake_upstream_files import FileRoutes, FileStore, StoredFile
from tests.fake_upstream_http import Endpoint, Handler, ProviderHandlers, RecordedRequest, UpstreamState
from tests.fake_upstream_message_batches import MessageBatchRoutes
from tests.fake_upstream_openai import (
    MODELS_BODY,
    completion,
    completion_chunks,
    embeddings,
    embeddings_refusal,
    model_body,
)
from tests.fake_upstream_responses import response, response_events
from tests.fake_upstream_wire import WIRES

__all__ = ["WIRES", "FakeUpstream", "RecordedRequest", "main"]
MAX_BODY_BYTES = 64 * 1024 * 1024


def endpoints(api_key: str, anthropic_key: str) -> list[tuple[str, Endpoint]]:
    """Every POST path the fake serves and the endpoint behind it."""
    openai, azure, anthropic = OpenAIDialect(api_key), AzureDialect(api_key), AnthropicDialect(anthropic_key)
    kinds = {
        "chat/completions": (("messages",), chat_completion, chat_chunks, None),
        "completions": (("prompt",), completion, completion_chunks, None),
        "embeddings": (("input",), embeddings, None, embeddings_refusal),
    }
    table = [(f"/v1/{path}", Endpoint(openai, *kind)) for path, kind in kinds.items()]
    table += [(f"/openai/deployments/{{deployment}}/{path}", Endpoint(azure, *kind)) for path, kind in kinds.items()]
    table.append(("/v1/responses", Endpoint(openai, (), response, response_events)))
    table.append(("/v1/messages", Endpoint(anthropic, ("max_tokens", "messages"), message, message_events)))
    return table


class FakeUpstream:
    """The fake provider server; ``url`` is ``http://host:port`` (no ``/v1``) once started."""

    def __init__(
        self,
        *,
        api_key: str = "sk-fake-upstream-key",
        anthropic_key: str = "sk-ant-fake-key",
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        wire: str = "compact",
    ) -> None:
        self.api_key, self.anthropic_key = api_key, anthropic_key
        self.host, self.port = host, port
        self.url = ""
        self.state = UpstreamState(record=record, wire=wire)
        self.book = BatchBook(FileStore(), self.state.wire)
        self._runner: web.AppRunner | None = None

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the last reset (when recording)."""
        return self.state.requests

    @property
    def cancelled_streams(self) -> int:
        """Streams whose client went away before the last frame was written."""
        return self.state.cancelled_streams

    @property
    def completed_streams(self) -> int:
        """Streams written to the end."""
        return self.state.completed_streams

    @property
    def files(self) -> dict[str, StoredFile]:
        """Files uploaded or produced by batches, by id."""
        return self.book.files.files

    @property
    def batches(self) -> dict[str, Batch]:
        """OpenAI batches (``batch_…``) and Anthropic message batches (``msgbatch_…``), by id."""
        return self.book.batches

    @property
    def batch_delay(self) -> float:
        """Seconds a batch runs before it finishes, checked whenever it is looked at (default 0)."""
        return self.book.delay

    @batch_delay.setter
    def batch_delay(self, seconds: float) -> None:
        self.book.delay = seconds

    def hold_batches(self, hold: bool = True) -> None:
        """Keep batches in progress (however long they have run) until ``complete_batches``."""
        self.book.held = hold

    def complete_batches(self) -> None:
        """Finish every open batch now."""
        self.book.complete_all()

    def reset(self) -> None:
        """Forget recorded requests and counters (switched failures, files and batches stay)."""
        self.state.reset()

    def fail(
        self,
        model: str,
        mode: int | str,
        *,
        times: int | None = None,
        retry_after: RetryAfter = None,
        retry_after_ms: int | None = None,
    ) -> None:
        """Fail the next ``times`` requests for ``model`` (all, when None) with a status, ``"reset"``, ``"hang"``
        or ``"midstream"``: see ``tests/fake_upstream_failures.py``."""
        self.state.failures.fail(model, mode, times=times, retry_after=retry_after, retry_after_ms=retry_after_ms)

    def heal(self, model: str | None = None) -> None:
        """Stop failing ``model`` (every model, when None)."""
        self.state.failures.heal(model)

    def calls(self, model: str) -> int:
        """How many requests for ``model`` reached the fake since the last reset, failed ones included."""
        return self.state.failures.calls(model)

    def build_app(self) -> web.Application:
        """The aiohttp application: provider routes plus the ``/_fake`` introspection routes."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        handlers = ProviderHandlers(self.state)
        table = endpoints(self.api_key, self.anthropic_key)
        for path, endpoint in table:
            app.router.add_post(path, handlers.route(endpoint))
        self._add_batches(app, dict(table))
        openai = OpenAIDialect(self.api_key)
        app.router.add_get("/v1/models", _fixed(handlers, openai, lambda _: MODELS_BODY))
        app.router.add_get("/v1/models/{model}", _fixed(handlers, openai, model_body))
        app.router.add_get("/_fake/requests", self._recorded)
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_post("/_fake/reset", self._reset)
        FailureRoutes(self.state.failures).register(app)
        return app

    def _add_batches(self, app: web.Application, table: dict[str, Endpoint]) -> None:
        """Files, Batches and Message Batches, answering batched requests with the live endpoints' functions."""
        dialects = [OpenAIDialect(self.api_key), AzureDialect(self.api_key)]
        FileRoutes(self.state, self.book.files, *dialects).register(app)
        openai_paths = [path for path in table if path.startswith("/v1/") and path != "/v1/messages"]
        answerers = {path: table[path] for path in openai_paths}
        BatchRoutes(self.state, self.book, answerers, dialects).register(app)
        anthropic = table["/v1/messages"]
        assert isinstance(anthropic.dialect, AnthropicDialect)
        MessageBatchRoutes(self.state, self.book, anthropic, anthropic.dialect).register(app)
        app.router.add_post("/_fake/batches", control_route(self.book))

    async def start(self) -> None:
        """Bind and serve; handlers are cancelled when their client disconnects."""
        self._runner = web.AppRunner(self.build_app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        sockets = self._runner.addresses
        self.port = sockets[0][1] if sockets else self.port
        self.url = f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Stop serving and close open connections."""
        self.state.failures.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _recorded(self, _: web.Request) -> web.Response:
        body = orjson.dumps([recorded.to_dict() for recorded in self.state.requests])
        return web.Response(body=body, content_type=JSON)

    async def _stats(self, _: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.state.stats()), content_type=JSON)

    async def _reset(self, _: web.Request) -> web.Response:
        self.reset()
        return web.Response(body=b'{"ok":true}', content_type=JSON)


def _fixed(handlers: ProviderHandlers, dialect: OpenAIDialect, body_for: Callable[[str], bytes]) -> Handler:
    """A GET handler answering fixed bytes (computed from the ``{model}`` path part, if any)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await handlers.models(request, dialect, body_for(request.match_info.get("model", "")))

    return handler


async def serve(host: str, port: int, record: bool, wire: str = "compact") -> None:
    """Run a fake upstream until SIGTERM or SIGINT."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with FakeUpstream(host=host, port=port, record=record, wire=wire) as fake:
        print(f"listening on {fake.url}", flush=True)
        await stopping.wait()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop
    return None


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.fake_upstream --port 9000 [--host 127.0.0.1] [--no-record] [--wire spaced]``."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_upstream", description="A fake LLM provider on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--no-record", action="store_true", help="count requests but keep no copies (long benchmarks)")
    parser.add_argument("--wire", choices=WIRES, default="compact", help="how JSON and SSE are laid out")
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(args.host, args.port, record=not args.no_record, wire=args.wire))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
