"""The `netra` command: serve, migrate, manage tenants and keys, read the ledger."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from cli import accounts, ledger, prices, serve

Command = Callable[[argparse.Namespace], int]


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="apply migrations, then serve the gateway (one process, embedded defaults)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.set_defaults(func=serve.run)
    gateway = sub.add_parser("gateway", help="serve the gateway alone, for production")
    gateway.add_argument("--host")
    gateway.add_argument("--port", type=int)
    gateway.add_argument("--workers", type=int, default=1)
    gateway.set_defaults(func=serve.gateway)
    migrate = sub.add_parser("migrate", help="apply all migrations and exit")
    migrate.set_defaults(func=serve.migrate)


def _add_tenants(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenants = sub.add_parser("tenants", help="manage tenants").add_subparsers(dest="action", required=True)
    create = tenants.add_parser("create", help="create a tenant")
    create.add_argument("name")
    create.add_argument("--tier", default="free", choices=("free", "early", "mid", "enterprise"))
    create.set_defaults(func=accounts.tenants_create)
    listing = tenants.add_parser("list", help="list tenants")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=accounts.tenants_list)
    for action, status in (("suspend", "suspended"), ("activate", "active")):
        cmd = tenants.add_parser(action, help=f"set a tenant {status}")
        cmd.add_argument("name")
        cmd.set_defaults(func=accounts.tenants_status, status=status)


def _add_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key; prints it alone on stdout, once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--models", default="", help="comma-separated models the key may use (default: all)")
    create.add_argument("--expires-in", help="lifetime such as 30d, 12h, 90m")
    create.set_defaults(func=accounts.keys_create)
    listing = keys.add_parser("list", help="list a tenant's keys")
    listing.add_argument("--tenant", required=True)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=accounts.keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key")
    revoke.set_defaults(func=accounts.keys_revoke)


def _add_ledger(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmds = sub.add_parser("ledger", help="read the call ledger").add_subparsers(dest="action", required=True)
    summary = cmds.add_parser("summary", help="requests, tokens, cost, baseline and savings")
    export = cmds.add_parser("export", help="one line per call on stdout")
    for cmd in (summary, export):
        cmd.add_argument("--tenant")
        cmd.add_argument("--since", help="2026-11-01, 2026-11-01T12:00:00Z or 7d / 24h / 30m")
        cmd.add_argument("--until")
    summary.add_argument("--json", action="store_true")
    summary.set_defaults(func=ledger.summary)
    export.add_argument("--format", choices=("csv", "jsonl"), required=True)
    export.set_defaults(func=ledger.export)


def _add_prices(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmds = sub.add_parser("prices", help="price tables the ledger used").add_subparsers(dest="action", required=True)
    show = cmds.add_parser("show", help="list stored price versions, or print one")
    show.add_argument("--version", help="a price_version from the ledger")
    show.set_defaults(func=prices.show)


def parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    root = argparse.ArgumentParser(prog="netra", description="Netra, the OpenAI-compatible gateway.")
    sub = root.add_subparsers(dest="command", required=True)
    for add in (_add_serve, _add_tenants, _add_keys, _add_ledger, _add_prices):
        add(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = parser().parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except BrokenPipeError:
        # The reader went away (`netra ledger export | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
