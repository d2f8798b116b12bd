"""The `netra` command: serve, migrate, manage tenants and keys, read the ledger."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from pydantic import ValidationError

from cli import accounts, admin, invoices, ledger, policies, preflight, prices, serve, users
from cli.common import CommandError, fail
from core.models import TIERS
from core.settings import Settings
from policies.store import STATUSES as POLICY_STATUSES

Command = Callable[[argparse.Namespace], int]
Check = Callable[[Settings], str | None]
if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


TIER_HELP = "free 100, early 1 000, mid 10 000 requests/hour, enterprise unlimited"


class HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default wherever it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text and "%(default)" not in text and action.default not in (None, False, "", argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def _command(sub: Sub, name: str, text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text, formatter_class=HelpFormatter)


def _group(sub: Sub, name: str, text: str) -> Sub:
    return _command(sub, name, text).add_subparsers(dest="action", required=True, metavar="ACTION")


def _setting(name: str) -> str:
    return f"$NETRA_{name.upper()}, else {Settings.model_fields[name].default}"


def _add_listen(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--host", help=f"address to listen on (default: {_setting('host')})")
    cmd.add_argument("--port", type=int, help=f"port to listen on (default: {_setting('port')})")


def _add_serve(sub: Sub) -> None:
    run = _command(sub, "run", "apply migrations, then serve the gateway and the admin app (embedded defaults)")
    _add_listen(run)
    run.add_argument("--admin-port", type=int, help=f"the admin app's port (default: {_setting('admin_port')})")
    run.set_defaults(func=serve.run,
                     checks=(preflight.config_problem, preflight.sso_problem, preflight.database_problem))
    gateway = _command(sub, "gateway", "serve the gateway alone, for production (run `netra migrate` first)")
    _add_listen(gateway)
    gateway.add_argument("--workers", type=int, default=1, help="gateway processes (above 1 needs a ClickHouse server)")
    gateway.set_defaults(func=serve.gateway, checks=(preflight.config_problem, preflight.schema_problem))
    migrate = _command(sub, "migrate", "apply all migrations and exit")
    migrate.set_defaults(func=serve.migrate, checks=(preflight.database_problem,))


def _add_tenants(sub: Sub) -> None:
    tenants = _group(sub, "tenants", "manage tenants")
    create = _command(tenants, "create", "create a tenant")
    create.add_argument("name", help="a unique name")
    create.add_argument("--tier", default="free", choices=TIERS, help=TIER_HELP)
    create.set_defaults(func=accounts.tenants_create)
    listing = _command(tenants, "list", "list tenants")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=accounts.tenants_list)
    for action, status in (("suspend", "suspended"), ("activate", "active")):
        cmd = _command(tenants, action, f"set a tenant {status}")
        cmd.add_argument("name", help="the tenant's name")
        cmd.set_defaults(func=accounts.tenants_status, status=status)
    tier = _command(tenants, "set-tier", "move a tenant to another tier (its keys follow within seconds)")
    tier.add_argument("name", help="the tenant's name")
    tier.add_argument("tier", choices=TIERS, help=TIER_HELP)
    tier.set_defaults(func=accounts.tenants_tier)


def _add_keys(sub: Sub) -> None:
    keys = _group(sub, "keys", "manage API keys")
    create = _command(keys, "create", "create a key; prints it alone on stdout, once")
    create.add_argument("--tenant", required=True, help="the tenant the key belongs to")
    create.add_argument("--models", default="", help="comma-separated models the key may use (default: every model)")
    create.add_argument("--expires-in", help="lifetime such as 30d, 12h, 90m (default: never expires)")
    create.set_defaults(func=accounts.keys_create)
    listing = _command(keys, "list", "list a tenant's keys (prefixes only)")
    listing.add_argument("--tenant", required=True, help="the tenant whose keys to list")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=accounts.keys_list)
    revoke = _command(keys, "revoke", "revoke a key by id or prefix")
    revoke.add_argument("key", help="a key id (key_…) or display prefix (nk-…)")
    revoke.set_defaults(func=accounts.keys_revoke)


def _add_ledger(sub: Sub) -> None:
    cmds = _group(sub, "ledger", "read the call ledger (while no Netra holds the embedded store)")
    summary = _command(cmds, "summary", "requests, tokens, cost, baseline and savings")
    export = _command(cmds, "export", "one line per call on stdout")
    for cmd in (summary, export):
        cmd.add_argument("--tenant", help="one tenant's calls (default: every tenant)")
        cmd.add_argument("--since", help="2026-11-01, 2026-11-01T12:00:00Z or 7d / 24h / 30m (default: the first call)")
        cmd.add_argument("--until", help="the same forms, exclusive (default: now)")
    summary.add_argument("--json", action="store_true", help="print JSON instead of a table")
    summary.set_defaults(func=ledger.summary)
    export.add_argument("--format", choices=("csv", "jsonl"), required=True, help="output format")
    export.set_defaults(func=ledger.export)


def _add_prices(sub: Sub) -> None:
    cmds = _group(sub, "prices", "price tables the ledger used")
    show = _command(cmds, "show", "list stored price versions, or print one")
    show.add_argument("--version", help="a price_version from the ledger (default: list the versions)")
    show.set_defaults(func=prices.show)


def _add_policies(sub: Sub) -> None:
    cmds = _group(sub, "policies", "manage cache, route and batch policies (running gateways follow within seconds)")
    add = _command(cmds, "add", "store each policy in a YAML file as proposed; prints one id per line")
    add.add_argument("file", help="a YAML file, one policy per document")
    edit = _command(cmds, "edit", "store a file's policy as the next version (active at once if the policy is)")
    edit.add_argument("id", help="the policy's id (pol_…)")
    edit.add_argument("file", help="a YAML file holding one policy")
    for action, text in (("activate", "activate a proposed policy"), ("retire", "retire a policy")):
        cmd = _command(cmds, action, text)
        cmd.add_argument("id", help="the policy's id (pol_…)")
        cmd.set_defaults(func=getattr(policies, action))
    for cmd in (add, edit, *(cmds.choices[a] for a in ("activate", "retire"))):
        cmd.add_argument("--by", help="who makes the change: human:<name> or agent:<run id> (default: human:$USER)")
    add.set_defaults(func=policies.add)
    edit.set_defaults(func=policies.edit)
    listing = _command(cmds, "list", "list policies (newest version of each)")
    listing.add_argument("--status", choices=POLICY_STATUSES, help="only policies with this status")
    listing.set_defaults(func=policies.listing)
    show = _command(cmds, "show", "every version of a policy and who changed it when")
    show.add_argument("id", help="the policy's id (pol_…)")
    for cmd in (listing, show):
        cmd.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(func=policies.show)


def package_version() -> str:
    """The installed distribution's version."""
    try:
        return version("netra")
    except PackageNotFoundError:
        return "unknown (not installed; `pip install -e .`)"


def parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    root = argparse.ArgumentParser(
        prog="netra", description="Netra, the OpenAI-compatible gateway.", formatter_class=HelpFormatter
    )
    root.add_argument("--version", action="version", version=f"netra {package_version()}")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_serve, _add_tenants, _add_keys, _add_ledger, _add_prices, _add_policies):
        add(sub)
    for module in (invoices, users, admin):
        module.register(sub, HelpFormatter)
    return root


def _settings_problem(exc: ValidationError) -> str:
    """A bad NETRA_ variable as one line naming it."""
    error = exc.errors(include_url=False)[0]
    name = "NETRA_" + "_".join(str(p) for p in error["loc"]).upper()
    return f"{name}: {error['msg']} (got {error['input']!r})"


def _run(args: argparse.Namespace) -> int:
    checks: tuple[Check, ...] = getattr(args, "checks", ())
    for check in checks:
        if (problem := check(Settings())) is not None:
            return fail(problem)
    func: Command = args.func
    return func(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = parser().parse_args(argv)
    try:
        return _run(args)
    except CommandError as exc:
        return fail(str(exc))
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        return fail(_settings_problem(exc))
    except BrokenPipeError:
        # The reader went away (`netra ledger export | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
