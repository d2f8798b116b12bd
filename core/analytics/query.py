"""What every analytic takes: the `Query` (period, tenant, granularity), the `Run` seam, and shared SQL pieces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args

from core.errors import InvalidParameter

# Runs one parameterised SELECT and returns its rows: ClickHouseStore.query, or the ledger process's reader.
Run = Callable[[str, dict[str, Any]], list[tuple[Any, ...]]]
Granularity = Literal["hour", "day", "week", "month"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)
MAX_BUCKETS = 10_000  # a year and more of hours; a chart wants far fewer
ZERO = Decimal(0)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)

# The start of the bucket holding a rollup row's `hour`, as epoch seconds. Weeks start on Monday (ISO 8601).
BUCKET_SQL: dict[str, str] = {
    "hour": "toUnixTimestamp(hour)",
    "day": "toUnixTimestamp(toStartOfDay(hour))",
    "week": "toUnixTimestamp(toDateTime(toMonday(hour), 'UTC'))",
    "month": "toUnixTimestamp(toDateTime(toStartOfMonth(hour), 'UTC'))",
}


def utc(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def epoch_seconds(value: datetime) -> int:
    """Whole seconds since the epoch (the caller has checked `value` has no fraction)."""
    return (utc(value) - _EPOCH) // timedelta(seconds=1)


def from_epoch(seconds: int) -> datetime:
    """The UTC datetime of epoch seconds."""
    return _EPOCH + timedelta(seconds=seconds)


def bucket_start(value: datetime, granularity: Granularity) -> datetime:
    """The start of the bucket of `granularity` that holds `value` (UTC)."""
    value = utc(value).replace(minute=0, second=0, microsecond=0)
    if granularity == "hour":
        return value
    day = value.replace(hour=0)
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_bucket(value: datetime, granularity: Granularity) -> datetime:
    """The start of the bucket after the one starting at `value`."""
    if granularity == "month":
        return value.replace(year=value.year + value.month // 12, month=value.month % 12 + 1)
    return value + {"hour": _HOUR, "day": timedelta(days=1), "week": timedelta(days=7)}[granularity]


def _whole_hour(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidParameter(f"{name} must be a date and time", param=name)
    value = utc(value)
    if value.minute or value.second or value.microsecond:
        raise InvalidParameter(f"{name} must be a whole UTC hour (the rollups hold hours)", param=name)
    return value


@dataclass(frozen=True)
class Query:
    """An analytics question: calls received in [start, end) (whole UTC hours), of one tenant or all.

    `granularity` only matters to time series. Invalid values raise InvalidParameter (a 400 for the admin API).
    """

    start: datetime
    end: datetime
    tenant_id: str | None = None
    granularity: Granularity = "day"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _whole_hour(self.start, "start"))
        object.__setattr__(self, "end", _whole_hour(self.end, "end"))
        if self.end <= self.start:
            raise InvalidParameter("end must be after start", param="end")
        if self.granularity not in GRANULARITIES:
            raise InvalidParameter(f"granularity must be one of {', '.join(GRANULARITIES)}", param="granularity")
        if self.tenant_id is not None and not isinstance(self.tenant_id, str):
            raise InvalidParameter("tenant_id must be a string", param="tenant_id")
        if len(self.buckets()) > MAX_BUCKETS:
            raise InvalidParameter(f"more than {MAX_BUCKETS} buckets: use a coarser granularity", param="granularity")

    def buckets(self) -> list[datetime]:
        """The start of every bucket the period touches, in order (the first and last may be partial)."""
        out: list[datetime] = []
        cursor = bucket_start(self.start, self.granularity)
        while cursor < self.end and len(out) <= MAX_BUCKETS:
            out.append(cursor)
            cursor = next_bucket(cursor, self.granularity)
        return out

    def daily_or_hourly(self, daily: str, hourly: str) -> str:
        """`daily` seen through an `hour` column when the period is whole days and buckets are not hours, else
        `hourly`: a daily rollup has about 24 times fewer rows, and the same period and bucket SQL applies."""
        if self.granularity != "hour" and self.start.hour == 0 and self.end.hour == 0:
            return f"(SELECT *, toDateTime(day, 'UTC') AS hour FROM {daily})"
        return hourly

    def rollup_where(self) -> tuple[str, dict[str, Any]]:
        """The WHERE clause on a rollup's `hour` (and `tenant_id`) for this query, with its parameters."""
        clauses = ["hour >= toDateTime({start:Int64}, 'UTC')", "hour < toDateTime({end:Int64}, 'UTC')"]
        params: dict[str, Any] = {"start": epoch_seconds(self.start), "end": epoch_seconds(self.end)}
        if self.tenant_id is not None:
            clauses.insert(0, "tenant_id = {tenant_id:String}")
            params["tenant_id"] = self.tenant_id
        return " WHERE " + " AND ".join(clauses), params


def ratio(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    """part / whole as a Decimal (28 significant digits), None when whole is 0."""
    return None if not whole else Decimal(part) / Decimal(whole)
