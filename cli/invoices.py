"""`netra invoices …`: generate (draft or issue) a tenant's monthly savings invoice, list, mark paid, void."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from cli.common import CommandError, database_message, fail, with_session
from core.clickhouse import ClickHouseLocked
from core.db import create_engine, create_sessionmaker
from core.invoices.csvform import render_csv
from core.invoices.lifecycle import list_invoices, mark_paid, set_fee_rate, void
from core.invoices.pdfform import render_pdf
from core.invoices.service import Books, generate, issue
from core.invoices.terms import InvoiceError, Month, parse_rate
from core.ledger_reader import LedgerReader, LedgerUnavailable, open_reader
from core.migrate import upgrade_relational
from core.settings import Settings
from core.tenants import TenantError

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]
T = TypeVar("T")
FORMATS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "json": lambda doc: (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
    "csv": lambda doc: render_csv(doc).encode("utf-8"),
    "pdf": render_pdf,
}
_LIST_COLUMNS = ("number", "tenant", "period", "status", "savings", "fee", "net_benefit", "issued_at", "replaced_by")


def _open_ledger(settings: Settings) -> LedgerReader:
    # As `netra ledger`: the running Netra's ledger process over its socket, else the store itself.
    try:
        return open_reader(settings)
    except (LedgerUnavailable, ClickHouseLocked) as exc:
        raise CommandError(f"cannot read the ledger: {exc}") from exc


def _with_books(settings: Settings, work: Callable[[Books], Awaitable[T]]) -> T:
    """Run `work` with the relational sessions and the ledger store open."""
    upgrade_relational(settings)
    store = _open_ledger(settings)

    async def go() -> T:
        engine = create_engine(settings)
        try:
            return await work(Books(create_sessionmaker(engine), store))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        raise CommandError(database_message(settings, exc)) from exc
    finally:
        store.close()


def _emit(data: bytes, output: str | None) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        Path(output).write_bytes(data)


def generate_cmd(args: argparse.Namespace) -> int:
    """Print (or write) a tenant's invoice for a month: the one in force, else a draft; --issue issues it."""
    try:
        month = Month.parse(args.month)
    except InvoiceError as exc:
        return fail(str(exc), 2)
    now = datetime.now(UTC).replace(microsecond=0)  # an invoice states its issue time to the second

    async def work(books: Books) -> dict[str, Any]:
        if args.issue:
            return await issue(books, args.tenant, month, now)
        return await generate(books, args.tenant, month)

    try:
        doc = _with_books(Settings(), work)
    except (TenantError, InvoiceError, ClickHouseLocked) as exc:
        return fail(str(exc))
    _emit(FORMATS[args.format](doc), args.output)
    return 0


def _change(action: Callable[..., Awaitable[dict[str, Any]]], args: argparse.Namespace) -> int:
    try:
        doc = with_session(Settings(), lambda s: action(s, args.number, datetime.now(UTC)))
    except InvoiceError as exc:
        return fail(str(exc))
    print(f"invoice {doc['number']} ({doc['tenant']}, {doc['period']}) is {doc['status']}")
    return 0


def paid_cmd(args: argparse.Namespace) -> int:
    """Mark an issued invoice paid."""
    return _change(mark_paid, args)


def void_cmd(args: argparse.Namespace) -> int:
    """Void an issued invoice; issuing its month again gives a new number."""
    return _change(void, args)


def _table(rows: list[dict[str, Any]]) -> str:
    cells = [[str(r[c] if r[c] is not None else "-") for c in _LIST_COLUMNS] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(_LIST_COLUMNS)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(_LIST_COLUMNS, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def list_cmd(args: argparse.Namespace) -> int:
    """List issued invoices (every status)."""
    try:
        rows = with_session(Settings(), lambda s: list_invoices(s, args.tenant))
    except TenantError as exc:
        return fail(str(exc))
    print(json.dumps(rows, indent=2, ensure_ascii=False) if args.json else _table(rows))
    return 0


def fee_rate_cmd(args: argparse.Namespace) -> int:
    """Set or clear an enterprise tenant's own fee rate."""
    try:
        rate = None if args.rate == "default" else parse_rate(args.rate)
        shown = with_session(Settings(), lambda s: set_fee_rate(s, args.tenant, rate))
    except (TenantError, InvoiceError) as exc:
        return fail(str(exc))
    print(f"tenant {args.tenant}: fee rate {shown} of savings on invoices not yet issued")
    return 0


def _add_generate(cmds: Sub, formatter: type[argparse.HelpFormatter]) -> None:
    text = "a tenant's savings invoice for a month: the issued one if any, else a draft computed now"
    cmd = cmds.add_parser("generate", help=text, description=text, formatter_class=formatter)
    cmd.add_argument("--tenant", required=True, help="the tenant's name")
    cmd.add_argument("--month", required=True, help="the calendar month (UTC), YYYY-MM, e.g. 2026-11")
    cmd.add_argument("--format", choices=tuple(FORMATS), default="json", help="output format")
    cmd.add_argument("--issue", action="store_true", help="issue it (numbered, immutable); again does nothing")
    cmd.add_argument("--output", help="write to this file (default: standard output)")
    cmd.set_defaults(func=generate_cmd)


def register(sub: Sub, formatter: type[argparse.HelpFormatter] = argparse.HelpFormatter) -> None:
    """Add `netra invoices` and its actions to the root command's subparsers."""
    text = "savings invoices: generate, issue, list, mark paid, void (reads the ledger like `netra ledger`)"
    top = sub.add_parser("invoices", help=text, description=text, formatter_class=formatter)
    cmds = top.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_generate(cmds, formatter)
    listing = cmds.add_parser("list", help="list issued invoices", formatter_class=formatter)
    listing.add_argument("--tenant", help="one tenant's invoices (default: every tenant's)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=list_cmd)
    for name, func, what in (("mark-paid", paid_cmd, "mark an issued invoice paid"),
                             ("void", void_cmd, "void an issued invoice (its month can be issued anew)")):
        cmd = cmds.add_parser(name, help=what, description=what, formatter_class=formatter)
        cmd.add_argument("number", help="the invoice number, e.g. NET-2026-000001")
        cmd.set_defaults(func=func)
    rate = cmds.add_parser("set-fee-rate", help="an enterprise tenant's own fee rate", formatter_class=formatter)
    rate.add_argument("--tenant", required=True, help="the tenant's name (tier enterprise)")
    rate.add_argument("rate", help="a share of savings between 0 and 1 (0.15 for 15%%), or `default` (0.20)")
    rate.set_defaults(func=fee_rate_cmd)
