"""Analytics over the ledger (core/analytics) as JSON: each question asked of a ledger reader off the event loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from admin.ledger import LedgerAccess, read
from core.analytics import Run
from core.ledger_reader import LedgerReader

DEFAULT_PERIOD = timedelta(days=7)
Question = Callable[[Run], Any]


def plain(value: Any) -> Any:
    """A result as JSON values: dataclasses as objects, money as decimal strings, times as ISO 8601 UTC."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def default_period(now: datetime) -> tuple[datetime, datetime]:
    """The last seven days up to the end of the current hour (the rollups hold whole hours)."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - DEFAULT_PERIOD, end


async def ask(ledger: LedgerAccess, question: Question) -> Any:
    """The answer to a question over the ledger, as JSON values; an unreachable ledger is a 503."""

    def asked(reader: LedgerReader) -> Any:
        return question(reader.query)

    return plain(await read(ledger, asked))
