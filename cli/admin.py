"""`netra admin`: serve the admin app alone; and the admin process `netra run` starts beside the gateway."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import uvicorn

from admin.app import create_app
from cli import preflight
from core.db import create_engine, create_sessionmaker
from core.logs import configure_logging
from core.settings import Settings
from core.user_store import count_users
from gateway.server import serve

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

STOP_PATIENCE = 10.0


def admin_config(settings: Settings, host: str, port: int) -> uvicorn.Config:
    """How the admin app is served (uvicorn trusts X-Forwarded-* from 127.0.0.1 only, its default)."""
    return uvicorn.Config(
        create_app(settings), host=host, port=port, log_config=None, access_log=False, server_header=False,
        lifespan="on", ws="none", timeout_graceful_shutdown=int(settings.graceful_shutdown_timeout),
    )


def _exit_with_parent() -> None:
    """Stop (gracefully) when the parent's end of stdin closes: `netra run` exited, even if it was killed."""

    def watch() -> None:
        sys.stdin.buffer.read()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve_admin(args: argparse.Namespace) -> int:
    """Serve the admin app until shut down."""
    settings = Settings()
    configure_logging(settings.log_level)
    if args.exit_with_parent:
        _exit_with_parent()
    host = args.host or settings.host
    return serve(admin_config(settings, host, args.port or settings.admin_port))


def start_admin_process(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    """The admin app in a process of its own (an idle admin app then costs the gateway nothing)."""
    command = [sys.executable, "-m", "cli.main", "admin", "--host", settings.host, "--port", str(port),
               "--exit-with-parent"]
    return subprocess.Popen(command, stdin=subprocess.PIPE)  # noqa: S603 (our interpreter, our arguments)


def stop_admin_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop the admin process gracefully, killing it if it does not stop in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_PATIENCE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdin is not None:
        proc.stdin.close()


def has_users(settings: Settings) -> bool:
    """Whether any admin user exists yet (the database is migrated)."""

    async def count() -> int:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session:
                return await count_users(session)
        finally:
            await engine.dispose()

    return asyncio.run(count()) > 0


def register(sub: Sub, formatter: type[argparse.HelpFormatter] = argparse.HelpFormatter) -> None:
    """Add `netra admin` to the command line."""
    text = "serve the admin app alone, for production (run `netra migrate` first)"
    cmd = sub.add_parser("admin", help=text, description=text, formatter_class=formatter)
    cmd.add_argument("--host", help="address to listen on (default: $NETRA_HOST, else 127.0.0.1)")
    cmd.add_argument("--port", type=int, help="port to listen on (default: $NETRA_ADMIN_PORT, else 8081)")
    cmd.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    cmd.set_defaults(func=serve_admin, checks=(preflight.sso_problem, preflight.schema_problem))
