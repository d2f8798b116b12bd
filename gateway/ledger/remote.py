"""Ingest in a child process: the gateway only appends to its spill; the child sends it to ClickHouse.

The child (`python -m gateway.ledger.sidecar`) opens the store itself, so the embedded engine's CPU and memory
stay out of the gateway's process. They talk over the child's stdin and stdout, one JSON object per line:
the gateway sends the settings first, then `{"live": N}` when it moves to segment N and `{"hurry": ±1}` while a
drain waits; the child answers with progress reports (see sidecar.py). End of input tells the child to stop.
A child that dies is started again; the rows wait on disk meanwhile, and its ack logs say where to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson

from core.backoff import Backoff
from core.settings import Settings
from gateway.ledger.base import IngestTask
from gateway.ledger.metrics import Backlog, LedgerMetrics

log = logging.getLogger("netra.ledger")
CHILD_SETTINGS = (
    "data_dir", "clickhouse_url", "clickhouse_database", "log_level", "graceful_shutdown_timeout",
    "ledger_segment_bytes", "ledger_batch_rows", "ledger_flush_interval",
)
_LIVE_POLL = 0.05
_RESTART_FIRST, _RESTART_MAX = 0.5, 10.0
HEALTHY_RUN = 60.0  # a child that ran this long was healthy: its restart pause starts again from the first
_STOP_WAIT = 10.0


def child_settings(settings: Settings) -> bytes:
    """The settings line for the child: what ingest needs, never a secret."""
    data = settings.model_dump(include=set(CHILD_SETTINGS), mode="json")
    data["data_dir"] = str(settings.data_dir.resolve())
    return orjson.dumps(data) + b"\n"


def restart_pause(backoff: Backoff, ran_for: float) -> float:
    """The pause before restarting a child that ran `ran_for` seconds: growing while children keep dying young."""
    if ran_for > HEALTHY_RUN:
        backoff.reset()
    return backoff.next()


class RemoteIngest(IngestTask):
    """Runs and supervises the ingest child, and mirrors its progress into the gateway's metrics."""

    def __init__(
        self, settings: Settings, instance: str, metrics: LedgerMetrics, backlog: Backlog,
        live_segment: Callable[[], int], clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._instance = instance
        self._metrics = metrics
        self._backlog = backlog
        self._live_segment = live_segment
        self._clock = clock
        self._proc: asyncio.subprocess.Process | None = None
        self._hurry = 0
        self._told_live = 0
        self._stopping = False
        self.recovered = False
        self.store_ready = False  # the child has the store open
        self.ingested = (0, 0)

    def start(self) -> None:
        """Start the child, and restart it whenever it dies until `stop` (so only the supervisor's end is final)."""
        self._launch(self._supervise(), "ledger-ingest-child")

    def hurry(self, waiting: int) -> None:
        """Count drains waiting and tell the child (a 0 only wakes it)."""
        self._hurry += waiting
        self._send({"hurry": waiting})

    def _send(self, message: dict[str, Any]) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        proc.stdin.write(orjson.dumps(message) + b"\n")

    async def _supervise(self) -> None:
        backoff = Backoff(_RESTART_FIRST, _RESTART_MAX)
        while not self._stopping:
            began = self._clock()
            code = await self._run_child()
            if self._stopping:
                return
            delay = restart_pause(backoff, self._clock() - began)
            log.error("ledger ingest process exited (status %s); restarting in %.1fs", code, delay)
            await asyncio.sleep(delay)

    async def _run_child(self) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.ledger.sidecar", self._instance,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True,
        )
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(child_settings(self._settings))
        self._told_live = 0
        if self._hurry:
            self._send({"hurry": self._hurry})
        watcher = asyncio.create_task(self._tell_live(), name="ledger-live-segment")
        try:
            while line := await proc.stdout.readline():
                self._apply(line)
            return await proc.wait()
        finally:
            watcher.cancel()
            self._proc = None
            self.store_ready = False

    async def _tell_live(self) -> None:
        # The child may delete a segment only once the gateway has moved past it: say when that happens.
        while True:
            live = self._live_segment()
            if live != self._told_live:
                self._told_live = live
                self._send({"live": live})
            await asyncio.sleep(_LIVE_POLL)

    def _apply(self, line: bytes) -> None:
        try:
            report = orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("unreadable line from the ledger ingest process: %r", line[:200])
            return
        backlog, metrics = self._backlog, self._metrics
        backlog.rows += report.get("rows", 0)
        backlog.bytes += report.get("bytes", 0)
        backlog.disk_bytes += report.get("disk", 0)
        backlog.oldest_us = report.get("oldest_us")
        if report.get("written"):
            metrics.rows_written.inc(report["written"])
            backlog.mark = self._clock()
        metrics.insert_errors.inc(report.get("errors", 0))
        metrics.spill_errors.inc(report.get("spill_errors", 0))
        metrics.rows_rejected.inc(report.get("rejected", 0))
        if "at" in report:
            self.ingested = (report["at"][0], report["at"][1])
        self.recovered = self.recovered or bool(report.get("recovered"))
        self.store_ready = report.get("store", self.store_ready)

    async def stop(self) -> None:
        """Close the child's input (it stops after the batch in hand) and wait for its last report."""
        task, self._task = self._task, None
        self._stopping = True
        proc = self._proc
        if task is None:
            return
        if proc is None or proc.stdin is None:
            task.cancel()  # between two children: nothing to wait for
        else:
            proc.stdin.close()
        try:
            async with asyncio.timeout(_STOP_WAIT):
                await asyncio.gather(task, return_exceptions=True)
        except TimeoutError:
            log.error("ledger ingest process did not stop; killing it")
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
