"""Latency and time-to-first-token percentiles, read from the histograms of llm_calls_latency_hourly.

A histogram bucket b holds the values in [0.1 * 1.05^b, 0.1 * 1.05^(b+1)) ms (migration 0005). A percentile is
the nearest-rank one (the smallest value with at least p of the calls at or below it), reported as the
geometric middle of its bucket: within 2.5% of the exact value, whatever the number of calls.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace

from core.analytics.query import Query, Run

GROWTH = 1.05
FLOOR_MS = 0.1
LEVELS = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def bucket_of(ms: float) -> int:
    """The histogram bucket of a value in ms, as the migration computes it."""
    return min(65535, math.floor(math.log(max(ms, FLOOR_MS) / FLOOR_MS) / math.log(GROWTH)))


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: the geometric middle of its bounds."""
    return float(FLOOR_MS * GROWTH ** (bucket + 0.5))


def percentile(histogram: Mapping[int, int], level: float) -> float | None:
    """The nearest-rank percentile `level` (0-1] of a histogram, None when it is empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, math.ceil(level * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    raise AssertionError("unreachable: the ranks add up to the total")  # pragma: no cover


@dataclass(frozen=True)
class Percentiles:
    """p50/p95/p99 of latency (all calls) and of time to first token (streams that got a first byte), in ms."""

    calls: int
    latency_ms: dict[str, float | None]
    ttft_calls: int
    ttft_ms: dict[str, float | None]

    @classmethod
    def of(cls, latency: Mapping[int, int], ttft: Mapping[int, int]) -> Percentiles:
        """Percentiles of two histograms."""
        return cls(
            calls=sum(latency.values()),
            latency_ms={name: percentile(latency, level) for name, level in LEVELS},
            ttft_calls=sum(ttft.values()),
            ttft_ms={name: percentile(ttft, level) for name, level in LEVELS},
        )


@dataclass(frozen=True)
class LatencyReport:
    """Percentiles over all calls of the period and per served model."""

    overall: Percentiles
    by_model: dict[str, Percentiles]


def latency(run: Run, query: Query) -> LatencyReport:
    """Latency and time-to-first-token percentiles of the period, overall and per served model."""
    where, params = query.rollup_where()
    # Latency is granularity-free: whole days read the daily histograms.
    source = replace(query, granularity="day").daily_or_hourly("llm_calls_latency_daily", "llm_calls_latency_hourly")
    sql = (
        "SELECT toString(served_model) AS m, toString(metric) AS k, bucket, sum(calls) "
        f"FROM {source}{where} GROUP BY m, k, bucket"
    )
    histograms: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    for model, metric, bucket, calls in run(sql, params):
        histograms[model, metric][bucket] += calls
        histograms["", metric][bucket] += calls
    models = sorted({model for model, _ in histograms} - {""})
    by_model = {m: Percentiles.of(histograms[m, "latency"], histograms[m, "ttft"]) for m in models}
    return LatencyReport(overall=Percentiles.of(histograms["", "latency"], histograms["", "ttft"]), by_model=by_model)
