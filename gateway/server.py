"""Serving the gateway with uvicorn: one configuration for the CLI and the tests, and a clean exit on SIGTERM."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from core.settings import Settings
from gateway.protocol import ConnectionLimits, LimitedConfig

STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The client-connection limits the settings ask for."""
    return ConnectionLimits(
        max_header_bytes=settings.max_header_bytes, client_body_timeout=settings.client_body_timeout,
        max_connections=settings.max_connections,
    )


def server_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """How the gateway is served (`app` is the ASGI app, or an import string with factory=True)."""
    options: dict[str, Any] = {
        "host": settings.host, "port": settings.port, "loop": "uvloop", "ws": "none", "log_config": None,
        "access_log": False, "lifespan": "on", "timeout_graceful_shutdown": int(settings.graceful_shutdown_timeout),
        # uvicorn types it as int but only hands it to call_later: fractions of a second work.
        "timeout_keep_alive": settings.keep_alive_timeout, "server_header": False, "proxy_headers": False,
        **overrides,
    }
    return LimitedConfig(app, connection_limits(settings), **options)


class GatewayServer(uvicorn.Server):
    """uvicorn's Server, except that a signal it has handled (a graceful shutdown) is not raised again.

    uvicorn re-raises the captured SIGTERM once it has shut down, so the process dies of it (status -15) after a
    clean stop; here a clean stop exits 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install uvicorn's handlers for the duration of serving, and forget the signals handled."""
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()


def serve(config: uvicorn.Config) -> int:
    """Serve until shut down (by one process, or a supervisor of `config.workers`); the exit status."""
    server = GatewayServer(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()  # its workers run uvicorn's Server
            return 0
        server.run()
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        pass
    return 0 if server.started else STARTUP_FAILURE
