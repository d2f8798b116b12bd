"""The one pure-ASGI middleware: request id, headers, metrics, the access log and the ledger row."""

from __future__ import annotations

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
from gateway.responses import BytesResponse, SSEResponse
from gateway.state import GatewayState, state_of

Handler = Callable[[Request], Awaitable[BytesResponse | SSEResponse]]
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
            await send(message)

        return send_with_headers

    async def _proxy(self, handler: Handler, ctx: CallContext, scope: Scope, receive: Receive, send: Send) -> None:
        # The proxy endpoints skip Starlette's routing and exception layers: they are the hot path.
        try:
            response: ASGIApp = await handler(Request(scope, receive))
        except NetraError as exc:
            response = error_response(ctx, exc)
        except ClientDisconnect:
            ctx.cancelled = True  # gone before its request was read: nothing to answer
            return
        await response(scope, receive, send)

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
    now = time.perf_counter()
    route = route_label(ctx)
    m = state.metrics
    status = str(final_status(ctx)[1])
    m.child(m.requests, route, ctx.requested_model, status).inc()
    m.child(m.latency, route).observe(now - ctx.received_t)
    if ctx.stream and ctx.first_byte_t is not None:
        m.child(m.ttft, ctx.requested_model).observe(ctx.first_byte_t - ctx.received_t)
    if ctx.usage is not None:
        m.child(m.tokens, ctx.served_model, "prompt").inc(ctx.usage.prompt_tokens)
        m.child(m.tokens, ctx.served_model, "completion").inc(ctx.usage.completion_tokens)
    fields = ctx.log_fields()
    fields["status"] = int(status)
    state.access_log.write(fields)
    if ctx.billable:
        state.ledger.finish(finish_row(ctx, state.prices, m, now))
