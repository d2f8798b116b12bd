"""The ledger's Prometheus metrics, and the backlog counts they are computed from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class Backlog:
    """Work not yet acknowledged by the sink; updated on the event loop, read by scrapes."""

    rows: int = 0  # finish records not yet acknowledged (on disk, or waiting in memory to be appended)
    bytes: int = 0  # segment bytes not yet read and acknowledged
    disk_bytes: int = 0  # bytes of segment files on disk
    oldest_us: int | None = None  # finished_at of the first row of the batch being sent, when there is one
    mark: float = 0.0  # when the rows not in that batch started to wait, at the latest

    def age(self, now: float) -> float:
        """Seconds the oldest unacknowledged row has waited (0 when there is none)."""
        if self.rows <= 0:
            return 0.0
        since = self.oldest_us / 1_000_000 if self.oldest_us is not None else self.mark
        return max(0.0, now - since)


class LedgerMetrics:
    """Counters of the writer's work and gauges of its backlog, on the app's registry."""

    def __init__(self, registry: CollectorRegistry, backlog: Backlog, clock: Callable[[], float]) -> None:
        self.rows_written = Counter(
            "netra_ledger_rows_written", "Ledger rows acknowledged by ClickHouse.", registry=registry
        )
        self.insert_errors = Counter(
            "netra_ledger_insert_errors", "Failed batch inserts into ClickHouse (each is retried).", registry=registry
        )
        self.spill_errors = Counter(
            "netra_ledger_spill_errors", "Failed writes, reads or syncs of the spill files.", registry=registry
        )
        self.rows_rejected = Counter(
            "netra_ledger_rows_rejected",
            "Rows ClickHouse refused as data, set aside in the spill dir's rejected.jsonl.", registry=registry,
        )
        self._gauges(registry, backlog, clock)
        self.rows_dropped = Counter(
            "netra_ledger_rows_dropped",
            "Rows that could not be recorded at all (spill unwritable and the retry list full, or unserialisable).",
            registry=registry,
        )

    def _gauges(self, registry: CollectorRegistry, backlog: Backlog, clock: Callable[[], float]) -> None:
        self._gauge(registry, "netra_ledger_backlog_rows", "Finished calls not yet in ClickHouse.",
                    lambda: max(backlog.rows, 0))
        self._gauge(registry, "netra_ledger_backlog_bytes", "Spilled bytes not yet read and acknowledged.",
                    lambda: max(backlog.bytes, 0))
        self._gauge(registry, "netra_ledger_spill_bytes", "Bytes of spill segment files on disk.",
                    lambda: max(backlog.disk_bytes, 0))
        self._gauge(registry, "netra_ledger_oldest_unflushed_seconds",
                    "Age of the oldest finished call not yet in ClickHouse.", lambda: backlog.age(clock()))

    @staticmethod
    def _gauge(registry: CollectorRegistry, name: str, doc: str, value: Callable[[], float]) -> None:
        Gauge(name, doc, registry=registry).set_function(value)
