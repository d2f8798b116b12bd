"""`netra ledger summary` and `netra ledger export`: the same whether Netra runs or not (core/ledger_reader.py)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from cli.common import fail, with_session
from core.clickhouse import ClickHouseLocked
from core.ledger_export import export_rows
from core.ledger_reader import LedgerQueryError, LedgerReader, LedgerUnavailable, open_reader
from core.ledger_report import format_summary, parse_when
from core.ledger_report import summary as ledger_summary
from core.settings import Settings
from core.tenants import TenantError, tenant_by_name


def _window(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    now = datetime.now(UTC)
    since = parse_when(args.since, now) if args.since else None
    until = parse_when(args.until, now) if args.until else None
    return since, until


def _write(line: str) -> None:
    sys.stdout.write(line)


Reader = Callable[[LedgerReader, datetime | None, datetime | None], None]


def _read(args: argparse.Namespace, reader: Reader) -> int:
    """Open a ledger reader for the window the arguments name, run `reader`, close; clear failures otherwise."""
    settings = Settings()
    try:
        since, until = _window(args)
    except ValueError as exc:
        return fail(str(exc), 2)
    try:
        if args.tenant is not None:
            # A misspelt name would otherwise read as a tenant with no calls.
            with_session(settings, lambda s: tenant_by_name(s, args.tenant))
        store = open_reader(settings)
    except (TenantError, ClickHouseLocked, LedgerUnavailable) as exc:
        return fail(str(exc))
    except ValueError as exc:
        return fail(str(exc), 2)
    try:
        reader(store, since, until)
    except (LedgerQueryError, LedgerUnavailable) as exc:
        return fail(str(exc))
    finally:
        store.close()
    sys.stdout.flush()
    return 0


def summary(args: argparse.Namespace) -> int:
    """Requests by status, tokens, cost, baseline and savings (in total and by kind), with totals."""

    def show(store: LedgerReader, since: datetime | None, until: datetime | None) -> None:
        report = ledger_summary(store, tenant=args.tenant, since=since, until=until)
        print(json.dumps(report.to_dict(), indent=2) if args.json else format_summary(report))

    return _read(args, show)


def export(args: argparse.Namespace) -> int:
    """One line per call, CSV or JSONL, on stdout."""

    def dump(store: LedgerReader, since: datetime | None, until: datetime | None) -> None:
        export_rows(store, tenant=args.tenant, since=since, until=until, fmt=args.format, write=_write)

    return _read(args, dump)
