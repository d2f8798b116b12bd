"""The gateway ASGI app."""

from __future__ import annotations

import os
from collections.abc import Mapping

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from core.errors import NetraError
from core.settings import Settings
from gateway.errors import http_error, netra_error
from gateway.lifespan import lifespan_for
from gateway.middleware import GatewayMiddleware
from gateway.routes import routes


def create_app(settings: Settings | None = None, env: Mapping[str, str] | None = None) -> Starlette:
    """The gateway app; settings and environment are read here when not given (uvicorn's factory path)."""
    settings = settings or Settings()
    env = dict(os.environ) if env is None else env
    return Starlette(
        routes=routes(),
        middleware=[Middleware(GatewayMiddleware)],
        exception_handlers={NetraError: netra_error, HTTPException: http_error},
        lifespan=lifespan_for(settings, env),
    )
