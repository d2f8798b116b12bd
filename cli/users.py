"""`netra users create|list|disable`: admin app accounts, managed against the database (while Netra runs, too)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from cli.common import CommandError, fail, with_session
from cli.policies import actor
from core.passwords import HashCost, PasswordRejected, check_new_password, hash_password
from core.settings import Settings
from core.user_store import UserError, create_user, disable_by_email, list_users, normalise_email
from core.users import ROLES

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

ROLE_HELP = "admin: everything; finance: invoices and analytics, read-only elsewhere; viewer: read-only analytics"
LIST_COLUMNS = ("email", "role", "disabled", "id", "created_at")


def read_password(stdin: TextIO) -> str:
    """The new password: asked twice on a terminal, else the first line of stdin (never from argv)."""
    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise CommandError("the passwords differ")
        return password
    return stdin.readline().rstrip("\r\n")


def create(args: argparse.Namespace) -> int:
    """Create a user with the password read from stdin."""
    settings = Settings()
    try:
        email = normalise_email(args.email)
        password = read_password(sys.stdin)
        check_new_password(password, settings.admin_password_min_length)
    except (UserError, PasswordRejected) as exc:
        return fail(str(exc))
    password_hash, by = hash_password(password, HashCost.of(settings)), actor(args)
    try:
        user = with_session(settings, lambda s: create_user(s, email, password_hash, args.role, actor=by))
    except UserError as exc:
        return fail(str(exc))
    print(f"created user {user.email} ({user.role}) id={user.id}")
    return 0


def _table(rows: list[dict[str, Any]]) -> str:
    cells = [[str(row[c]) for c in LIST_COLUMNS] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(LIST_COLUMNS)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(LIST_COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def listing(args: argparse.Namespace) -> int:
    """List users (never their password hashes)."""
    rows = [u.public() for u in with_session(Settings(), list_users)]
    print(json.dumps(rows, indent=2) if args.json else _table(rows))
    return 0


def disable(args: argparse.Namespace) -> int:
    """Disable a user: its sessions end and its tokens stop working."""
    by = actor(args)
    try:
        user = with_session(Settings(), lambda s: disable_by_email(s, args.email, actor=by))
    except UserError as exc:
        return fail(str(exc))
    print(f"user {user.email} is disabled")
    return 0


def register(sub: Sub, formatter: type[argparse.HelpFormatter] = argparse.HelpFormatter) -> None:
    """Add `netra users …` to the command line."""
    text = "manage admin app users (passwords are read from stdin, never from the command line)"
    users = sub.add_parser("users", help=text, description=text, formatter_class=formatter)
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    made = actions.add_parser(
        "create", help="create a user; the password is read from stdin", formatter_class=formatter,
        description="create a user; the password is asked on a terminal, else read as the first line of stdin",
    )
    made.add_argument("email", help="the user's email (stored lower-case)")
    made.add_argument("--role", required=True, choices=ROLES, help=ROLE_HELP)
    made.set_defaults(func=create)
    shown = actions.add_parser("list", help="list users", description="list users", formatter_class=formatter)
    shown.add_argument("--json", action="store_true", help="print JSON instead of a table")
    shown.set_defaults(func=listing)
    off = actions.add_parser("disable", help="disable a user", description="disable a user; its sessions end",
                             formatter_class=formatter)
    off.add_argument("email", help="the user's email")
    off.set_defaults(func=disable)
