"""The ledger process's reports: deltas a gateway adds up, and recovery's work counted by exactly one gateway."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from gateway.ledger.follower import Reporter
from gateway.ledger.metrics import Backlog, LedgerMetrics


class Gateway:
    """What a gateway makes of the report lines it receives."""

    def __init__(self) -> None:
        self.lines: list[dict[str, object]] = []

    def send(self, line: bytes) -> None:
        self.lines.append(orjson.loads(line))

    def total(self, key: str) -> int:
        return sum(int(line.get(key, 0)) for line in self.lines)  # type: ignore[call-overload]


def reporter(progress: bool, send: Gateway | None) -> tuple[Reporter, Backlog, LedgerMetrics]:
    backlog, registry = Backlog(), CollectorRegistry()
    metrics = LedgerMetrics(registry, backlog, lambda: 0.0)
    return Reporter(send.send if send else None, backlog, registry, progress), backlog, metrics


def test_a_follower_reports_progress_flags_and_deltas_once() -> None:
    gateway = Gateway()
    report, backlog, metrics = reporter(True, gateway)
    report.emit()
    assert gateway.lines == [{"store": False, "recovered": False, "oldest_us": None, "at": [0, 0]}]
    backlog.rows -= 3
    metrics.rows_written.inc(3)
    report.store_open = True
    report.report(2, 4096)
    report.emit()
    report.emit()  # nothing changed since: no line
    assert gateway.lines[1:] == [{"rows": -3, "written": 3, "at": [2, 4096], "store": True, "recovered": False,
                                  "oldest_us": None}]


def test_recovery_work_moves_to_the_next_gateway_without_being_counted_twice() -> None:
    first, second = Gateway(), Gateway()
    recovery, backlog, metrics = reporter(False, None)
    recovery.rebase(first.send)
    backlog.rows += 10  # a dead writer's spill found
    recovery.emit()
    backlog.rows -= 4
    metrics.rows_written.inc(4)
    recovery.emit()
    recovery.rebase(second.send)  # the first gateway went away
    backlog.rows -= 6
    metrics.rows_written.inc(6)
    recovery.emit()
    assert first.total("rows") == 6 and first.total("written") == 4
    # The second gateway takes over the whole remaining backlog (0 after the last batch) and only the new writes.
    assert second.total("rows") == 0 and second.total("written") == 6
    assert all("at" not in line and "store" not in line for line in first.lines + second.lines)
