"""The gateway ASGI app."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from core.errors import NetraError
from core.settings import Settings
from gateway.edge import EdgeMiddleware
from gateway.errors import http_error, netra_error
from gateway.ledger import RowSink
from gateway.lifespan import lifespan_for
from gateway.middleware import GatewayMiddleware
from gateway.routes import routes


def create_app(
    settings: Settings | None = None, env: Mapping[str, str] | None = None,
    wrap_sink: Callable[[RowSink], RowSink] | None = None,
) -> EdgeMiddleware:
    """The gateway app; settings and environment are read here when not given (uvicorn's factory path).

    `wrap_sink` decorates the ledger's ClickHouse sink (fault injection in tests, extra observability).
    The middleware sits outside Starlette so the proxy endpoints, the hot path, skip Starlette's layers;
    everything else (and the lifespan) goes through the Starlette app inside. The edge layer, outermost, drops a
    trailing slash (so Starlette never redirects) and turns a stalled body into a 408.
    """
    settings = settings or Settings()
    env = dict(os.environ) if env is None else env
    inner = Starlette(
        routes=routes(),
        exception_handlers={NetraError: netra_error, HTTPException: http_error},
        lifespan=lifespan_for(settings, env, wrap_sink),
    )
    inner.router.redirect_slashes = False
    return EdgeMiddleware(GatewayMiddleware(inner))
