"""The one pure-ASGI middleware: request id, headers, metrics, the access log and the ledger row."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import NetraError
from gateway import handlers
from gateway.calls import final_status, finish_row
from gateway.context import LEDGER_ENDPOINTS, CallContext
from gateway.errors import error_response
from gateway.responses import ProxyResponse
from gateway.state import GatewayState, state_of

Handler = Callable[[Request], Awaitable[ProxyResponse]]
PROXY_ROUTES: Mapping[str, Handler] = MappingProxyType({
    "/v1/chat/completions": handlers.chat_completions,
    "/v1/completions": handlers.completions,
    "/v1/embeddings": handlers.embeddings,
    "/v1/responses": handlers.responses,
})

log = logging.getLogger("netra.gateway")
_KNOWN_ROUTES = LEDGER_ENDPOINTS | {"models", "/health", "/health/ready", "/metrics"}


def request_id_of(scope: Scope) -> str:
    """The client's x-request-id when it is sane, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if 0 < len(value) <= 128 and value.isascii() and value.decode().isprintable():
                return str(value.decode())
            break
    return f"req_{os.urandom(16).hex()}"


class ClientWatch:
    """Watches for the client leaving once its body is read, and then cancels the request's task at once.

    The one extra task per proxied request waits on `receive()`, which after the last body chunk yields only
    http.disconnect; servers deliver it when the connection drops, or once the response is complete (ignored).
    """

    __slots__ = ("_receive", "ctx", "gone", "task", "watcher")

    def __init__(self, receive: Receive, ctx: CallContext) -> None:
        self._receive = receive
        self.ctx = ctx
        self.task = asyncio.current_task()
        self.watcher: asyncio.Task[None] | None = None
        self.gone = False

    async def receive(self) -> Message:
        """The next request message for the handler; after the last body chunk the watch begins."""
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False) and self.watcher is None:
            self.watcher = asyncio.create_task(self._watch())
        return message

    async def _watch(self) -> None:
        message = await self._receive()
        if message["type"] == "http.disconnect" and not self.ctx.responded and self.task is not None:
            self.gone = True
            self.ctx.client_left()
            self.task.cancel()

    def stop(self) -> None:
        """End the watch (the request is over); it can no longer cancel anything."""
        if self.watcher is not None:
            self.watcher.cancel()


class GatewayMiddleware:
    """Wraps every HTTP request in a CallContext and accounts for it when it ends, whatever happened."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request; exceptions that escaped the handlers become a 500 envelope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = state_of(scope)
        ctx = CallContext(request_id_of(scope), scope["method"], scope["path"])
        scope["netra.ctx"] = ctx
        send = self._sender(ctx, send)
        state.metrics.in_flight.inc()
        try:
            handler = PROXY_ROUTES.get(scope["path"]) if scope["method"] == "POST" else None
            if handler is None:
                await self.app(scope, receive, send)
            else:
                await self._proxy(handler, ctx, scope, receive, send)
        except Exception:
            await self._fail(ctx, send)
        finally:
            state.metrics.in_flight.dec()
            account(state, ctx)

    @staticmethod
    def _sender(ctx: CallContext, send: Send) -> Send:
        rid = ctx.request_id.encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ctx.status = message["status"]
                if not ctx.stream:  # a stream's first byte is its first event, noted by the relay
                    ctx.mark_first_byte()
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid), *ctx.headers]
            elif not message.get("more_body", False) and message["type"] == "http.response.body":
                ctx.responded = True  # a disconnect from now on is the connection's normal end
            await send(message)

        return send_with_headers

    async def _proxy(self, handler: Handler, ctx: CallContext, scope: Scope, receive: Receive, send: Send) -> None:
        # The proxy endpoints skip Starlette's routing and exception layers: they are the hot path.
        watch = ClientWatch(receive, ctx)
        try:
            await self._respond(handler, ctx, scope, watch, send)
        except asyncio.CancelledError:
            if not watch.gone or watch.task is None:
                raise
            watch.task.uncancel()  # the cancellation was ours, for this request: the server goes on
        finally:
            watch.stop()

    @staticmethod
    async def _respond(handler: Handler, ctx: CallContext, scope: Scope, watch: ClientWatch, send: Send) -> None:
        try:
            response: ASGIApp = await handler(Request(scope, watch.receive))
        except NetraError as exc:
            response = error_response(ctx, exc)
        except ClientDisconnect:
            ctx.client_left()  # gone before its request was read: nothing to answer
            return
        await response(scope, watch.receive, send)

    async def _fail(self, ctx: CallContext, send: Send) -> None:
        log.exception("unhandled error", extra={"request_id": ctx.request_id})
        ctx.outcome, ctx.error_code = "gateway_error", "internal_error"
        if ctx.status:
            return  # the response had started; the connection is closed by the server
        error = NetraError("The gateway had an internal error; it has been logged.")
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": error.body()})


def route_label(ctx: CallContext) -> str:
    """A bounded label for the metrics: the endpoint, `models`, or `other` for unknown paths."""
    if ctx.endpoint in _KNOWN_ROUTES:
        return ctx.endpoint
    return "models" if ctx.path.startswith("/v1/models") else "other"


def account(state: GatewayState, ctx: CallContext) -> None:
    """Metrics, the access-log line and (for billable calls) the ledger row of a finished request."""
    # A client that left is accounted for at the moment it left, not when the cancelled work wound down.
    now = ctx.ended_t if ctx.ended_t is not None else time.perf_counter()
    route = route_label(ctx)
    m = state.metrics
    status = str(final_status(ctx)[1])
    # Only configured models label metrics: the name a client sent is unbounded (it goes to the ledger only).
    model = ctx.requested_model if ctx.provider else ""
    m.child(m.requests, route, model, status).inc()
    m.child(m.latency, route).observe(now - ctx.received_t)
    if ctx.stream and ctx.first_byte_t is not None:
        m.child(m.ttft, model).observe(ctx.first_byte_t - ctx.received_t)
    if ctx.usage is not None:
        m.child(m.tokens, ctx.served_model, "prompt").inc(ctx.usage.prompt_tokens)
        m.child(m.tokens, ctx.served_model, "completion").inc(ctx.usage.completion_tokens)
    fields = ctx.log_fields()
    fields["status"] = int(status)
    state.access_log.write(fields)
    if ctx.billable:
        state.ledger.finish(finish_row(ctx, state.prices, m, now))
