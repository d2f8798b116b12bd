"""`netra run`, `netra gateway` and `netra migrate`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from cli import admin as admin_cli
from cli.common import fail
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseLocked, ClickHouseStore, refuse_if_held
from core.logs import configure_logging
from core.migrate import upgrade_relational
from core.settings import Settings
from gateway.app import create_app
from gateway.server import serve, server_config


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with --host/--port taking precedence."""
    overrides: dict[str, Any] = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    return Settings(**overrides)


def _embedded(settings: Settings) -> bool:
    return settings.ledger_enabled and settings.resolved_clickhouse_url.startswith("chdb://")


def _refuse_if_held(settings: Settings, patience: float = 10.0) -> str | None:
    """Why this process cannot serve (another Netra holds the embedded store), or None.

    Waits a little first: the ingest process of a Netra that was just killed lets go of the store once it
    has noticed, a moment later.
    """
    if not settings.ledger_enabled:
        return None
    deadline = time.monotonic() + patience
    while True:
        try:
            refuse_if_held(settings)
        except ClickHouseLocked as exc:
            if time.monotonic() >= deadline:
                return str(exc)
            time.sleep(0.2)
            continue
        return None


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
    if (problem := _refuse_if_held(settings)) is not None:
        return fail(problem)
    upgrade_relational(settings)
    admin_port = getattr(args, "admin_port", None) or settings.admin_port
    admin = admin_cli.start_admin_process(settings, admin_port)
    try:
        announce(settings, admin_port)
        return serve(server_config(create_app(settings), settings))
    finally:
        admin_cli.stop_admin_process(admin)


def gateway(args: argparse.Namespace) -> int:
    """Serve the gateway alone; several workers need a ClickHouse server (chDB belongs to one process)."""
    settings = settings_from(args)
    configure_logging(settings.log_level)
    if args.workers > 1 and _embedded(settings):
        return fail("--workers above 1 needs NETRA_CLICKHOUSE_URL pointing at a ClickHouse server: "
                    "the embedded store belongs to one process")
    if (problem := _refuse_if_held(settings)) is not None:
        return fail(problem)
    if args.workers > 1:
        return serve(server_config("gateway.app:create_app", settings, factory=True, workers=args.workers))
    return serve(server_config(create_app(settings), settings))


def migrate(args: argparse.Namespace) -> int:
    """Apply relational and ClickHouse migrations."""
    settings = settings_from(args)
    upgrade_relational(settings)
    print("relational schema: up to date")
    try:
        refuse_if_held(settings)
        store = ClickHouseStore.open(settings)
    except ClickHouseLocked:
        print("clickhouse schema: held by the running Netra, which applied its migrations when it started")
        return 0
    try:
        applied = upgrade_clickhouse(store)
    finally:
        store.close()
    print(f"clickhouse schema: up to date ({len(applied)} applied now)")
    return 0
