"""Ingest by the data directory's ledger process: the gateway only appends to its spill and reports to it.

One ledger process runs per data directory (ledgerd.py); every gateway process of that directory connects to its
socket, says which spill instance is its own, then sends `{"live": N}` when it moves to segment N and
`{"hurry": ±1}` while a drain waits; it reads progress reports back (follower.py). A gateway that finds no ledger
process listening starts one (`python -m gateway.ledger.ledgerd`, which exits at once if another won the lock)
and connects again; so when the ledger process dies, a surviving gateway process starts the next one, and the
rows wait on disk meanwhile (the ack logs say where to resume). Stopping, the gateway closes its end and waits for
the ledger process to let go of its spill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import orjson

from core.backoff import Backoff
from core.ledger_socket import MAX_LINE, ShortPath, socket_path, take_lock
from core.settings import Settings
from gateway.ledger.base import IngestTask
from gateway.ledger.metrics import Backlog, LedgerMetrics

log = logging.getLogger("netra.ledger")
CHILD_SETTINGS = (
    "data_dir", "clickhouse_url", "clickhouse_database", "log_level", "graceful_shutdown_timeout",
    "ledger_segment_bytes", "ledger_batch_rows", "ledger_flush_interval",
)
_LIVE_POLL = 0.05
_CONNECT_POLL = 0.1
_RESTART_FIRST, _RESTART_MAX = 0.5, 10.0
HEALTHY_RUN = 60.0  # a connection that lasted this long was healthy: its reconnect pause starts again from the first
_STOP_WAIT = 10.0


def child_settings(settings: Settings) -> bytes:
    """The settings line for the ledger process: what ingest needs, never a secret."""
    data = settings.model_dump(include=set(CHILD_SETTINGS), mode="json")
    data["data_dir"] = str(settings.data_dir.resolve())
    return orjson.dumps(data) + b"\n"


def restart_pause(backoff: Backoff, ran_for: float) -> float:
    """The pause before reconnecting after `ran_for` seconds connected: growing while ledgers keep dying young."""
    if ran_for > HEALTHY_RUN:
        backoff.reset()
    return backoff.next()


class LedgerLauncher:
    """Starts the data directory's ledger process when none holds its lock."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._proc: subprocess.Popen[bytes] | None = None

    def ensure(self) -> None:
        """Start a ledger process unless one runs (or the one started last is still starting)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        fd = take_lock(self._settings.data_dir)
        if fd is None:
            return  # one runs (starting up or stopping), or a reader has the store open for a moment
        # Let go at once: the new process takes the lock itself (another gateway may race us; one of them wins).
        os.close(fd)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.ledger.ledgerd"], stdin=subprocess.PIPE, start_new_session=True,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(child_settings(self._settings))
        self._proc.stdin.close()

    def wait(self, timeout: float) -> int | None:
        """Wait for the ledger process this gateway started to exit; its status (None if none was started)."""
        proc, self._proc = self._proc, None
        return None if proc is None else proc.wait(timeout)

    def reap(self) -> None:
        """Collect the exit status of a ledger process this gateway started, if it has ended."""
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None


class RemoteIngest(IngestTask):
    """Keeps a connection to the ledger process (starting one when needed) and mirrors its reports into metrics."""

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
        self._launcher = LedgerLauncher(settings)
        self._writer: asyncio.StreamWriter | None = None
        self._hurry = 0
        self._told_live = 0
        self._stopping = False
        self.recovered = False
        self.store_ready = False  # the ledger process has the store open
        self.ingested = (0, 0)

    def start(self) -> None:
        """Connect, and reconnect whenever the ledger process goes away, until `stop`."""
        self._launch(self._supervise(), "ledger-connection")

    def hurry(self, waiting: int) -> None:
        """Count drains waiting and tell the ledger process (a 0 only wakes it)."""
        self._hurry += waiting
        self._send({"hurry": waiting})

    def _send(self, message: dict[str, Any]) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        writer.write(orjson.dumps(message) + b"\n")

    async def _supervise(self) -> None:
        backoff = Backoff(_RESTART_FIRST, _RESTART_MAX)
        while not self._stopping:
            reader, writer = await self._connect()
            began = self._clock()
            await self._session(reader, writer)
            self._launcher.reap()
            if self._stopping:
                return
            delay = restart_pause(backoff, self._clock() - began)
            log.error("the ledger process went away; reconnecting in %.1fs", delay)
            await asyncio.sleep(delay)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        path = socket_path(self._settings.data_dir)
        while True:
            try:
                with ShortPath(path) as address:
                    return await asyncio.open_unix_connection(address, limit=MAX_LINE)
            except OSError:
                await asyncio.to_thread(self._launcher.ensure)
            await asyncio.sleep(_CONNECT_POLL)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        writer.write(orjson.dumps({"follow": self._instance}) + b"\n")
        self._told_live = 0
        if self._hurry:
            self._send({"hurry": self._hurry})
        watcher = asyncio.create_task(self._tell_live(), name="ledger-live-segment")
        try:
            while line := await reader.readline():
                self._apply(line)
        except (ConnectionError, ValueError) as exc:
            log.warning("ledger connection failed: %s", exc)
        finally:
            watcher.cancel()
            self._writer = None
            self.store_ready = False
            writer.close()

    async def _tell_live(self) -> None:
        # The ledger may delete a segment only once the gateway has moved past it: say when that happens.
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
            log.warning("unreadable line from the ledger process: %r", line[:200])
            return
        if "error" in report:
            log.error("the ledger process refused this gateway: %s", report["error"])
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
        """Close our end (the ledger stops following after the batch in hand) and wait for it to close its end."""
        task, self._task = self._task, None
        self._stopping = True
        writer = self._writer
        if task is None:
            return
        if writer is None or not writer.can_write_eof():
            task.cancel()  # between two connections: nothing to wait for
        else:
            writer.write_eof()
        try:
            async with asyncio.timeout(_STOP_WAIT):
                await asyncio.gather(task, return_exceptions=True)
        except TimeoutError:
            log.error("the ledger process did not let go of this gateway's spill in time")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._launcher.reap()
