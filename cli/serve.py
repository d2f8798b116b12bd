"""`netra run`, `netra gateway` and `netra migrate`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from cli import admin as admin_cli
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseLocked, ClickHouseStore
from core.ledger_socket import take_lock
from core.logs import configure_logging
from core.migrate import upgrade_relational
from core.settings import Settings
from gateway.app import create_app
from gateway.server import serve, server_config

WORKER_HEALTHCHECK = 60  # seconds a worker may take to answer a health ping (uvicorn kills it after)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with --host/--port taking precedence."""
    overrides: dict[str, Any] = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    return Settings(**overrides)


def _url(host: str, port: int, path: str) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


def announce(settings: Settings, admin_port: int) -> None:
    """Where the two apps listen, and how to make the first admin user while there is none."""
    print(f"gateway:   {_url(settings.host, settings.port, '/v1')}  (the OpenAI base URL)")
    print(f"admin app: {_url(settings.host, admin_port, '/login')}")
    if not admin_cli.has_users(settings):
        print("no admin user yet: `netra users create you@example.com --role admin` makes one "
              "(it reads the password from stdin)")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Apply migrations, then serve the gateway here and the admin app in a process of its own."""
    settings = settings_from(args)
    configure_logging(settings.log_level)
    upgrade_relational(settings)
    admin_port = getattr(args, "admin_port", None) or settings.admin_port
    admin = admin_cli.start_admin_process(settings, admin_port)
    try:
        announce(settings, admin_port)
        return serve(server_config(create_app(settings), settings))
    finally:
        admin_cli.stop_admin_process(admin)


def gateway(args: argparse.Namespace) -> int:
    """Serve the gateway alone, in one process or several (all share the data dir's one ledger process)."""
    settings = settings_from(args)
    configure_logging(settings.log_level)
    if args.workers > 1:
        # A worker imports the whole app before it can answer the supervisor's first health ping: on a busy
        # machine that takes longer than uvicorn's 5 s default, and the worker would be killed as hung.
        return serve(server_config(
            "gateway.app:create_app", settings, factory=True, workers=args.workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK,
        ))
    return serve(server_config(create_app(settings), settings))


def migrate(args: argparse.Namespace) -> int:
    """Apply relational and ClickHouse migrations."""
    settings = settings_from(args)
    upgrade_relational(settings)
    print("relational schema: up to date")
    embedded = settings.resolved_clickhouse_url.startswith("chdb://")
    lock = take_lock(settings.data_dir) if embedded else None
    if embedded and lock is None:
        print("clickhouse schema: held by the running Netra, whose ledger process applied its migrations")
        return 0
    try:
        applied = _upgrade_store(settings)
    except ClickHouseLocked:
        print("clickhouse schema: held by the running Netra, which applied its migrations when it started")
        return 0
    finally:
        if lock is not None:
            os.close(lock)
    print(f"clickhouse schema: up to date ({len(applied)} applied now)")
    return 0


def _upgrade_store(settings: Settings) -> list[str]:
    store = ClickHouseStore.open(settings)
    try:
        return upgrade_clickhouse(store)
    finally:
        store.close()
