"""The period picker and tenant filter of the analytics pages, read from the query string."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from starlette.requests import Request

from core.analytics import Granularity, Query

# (query value, label, length, bucket) in the picker's order; the first is the default.
PERIODS: tuple[tuple[str, str, timedelta, Granularity], ...] = (
    ("24h", "Last 24 hours", timedelta(hours=24), "hour"),
    ("7d", "Last 7 days", timedelta(days=7), "day"),
    ("30d", "Last 30 days", timedelta(days=30), "day"),
    ("90d", "Last 90 days", timedelta(days=90), "week"),
)
MAX_TENANT_ID = 64


@dataclass(frozen=True, slots=True)
class Period:
    """The chosen period (ending at the next whole hour) and tenant (None: all)."""

    name: str
    query: Query

    @property
    def tenant_id(self) -> str | None:
        """The tenant filter."""
        return self.query.tenant_id


def _bucket_label(start: datetime, granularity: Granularity) -> str:
    return start.strftime("%H:00" if granularity == "hour" else "%b %d")


def period_of(request: Request, now: datetime) -> Period:
    """The period and tenant the query string asks for; unknown values fall back to the defaults."""
    name = request.query_params.get("period", "")
    chosen = next((p for p in PERIODS if p[0] == name), PERIODS[0])
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    tenant = request.query_params.get("tenant", "")[:MAX_TENANT_ID] or None
    return Period(chosen[0], Query(start=end - chosen[2], end=end, tenant_id=tenant, granularity=chosen[3]))


def labels(period: Period) -> list[str]:
    """The x-axis label of every bucket of the period."""
    return [_bucket_label(start, period.query.granularity) for start in period.query.buckets()]
