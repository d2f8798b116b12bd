"""The ledger's seams: where rows go (`RowSink`), what the gateway calls (`Ledger`), and a ledger that is off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class RowSink(Protocol):
    """Where acknowledged rows go: ClickHouseStore satisfies it.

    `insert_rows` blocks and raises on any failure; re-sending a batch with the same token must not
    duplicate it. `run` runs such a blocking call off the event loop.
    """

    def insert_rows(self, rows: Sequence[bytes], token: str) -> None:
        """Insert rows (JSONEachRow lines, as spilled) as one deduplicated batch (blocking)."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call on the sink's own thread."""


class IngestRunner(Protocol):
    """Who sends the writer's spill to ClickHouse: this process (local.py) or the ledger process (remote.py)."""

    recovered: bool  # every dead writer's spill found at start-up has been replayed
    ingested: tuple[int, int]  # own (segment, offset) before which every finish record is acknowledged
    store_ready: bool  # the store is open where the ingest runs

    def start(self) -> None:
        """Start ingesting."""

    def check(self) -> None:
        """Raise when ingest has stopped for good."""

    def hurry(self, waiting: int) -> None:
        """Wake ingest; `waiting` (+1/-1) counts drains that want batches sent as soon as the reader catches up."""

    async def stop(self) -> None:
        """Stop ingesting; whatever is not acknowledged stays on disk."""


class IngestTask:
    """What both ingest runners share: one background task, whose failure `check` surfaces."""

    _task: asyncio.Task[None] | None = None

    def _launch(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._task = asyncio.create_task(work, name=name)

    def check(self) -> None:
        """Raise when ingest has stopped for good (its failure, if it failed)."""
        task = self._task
        if task is None:
            raise RuntimeError("the ledger writer is not started")
        if task.done():
            task.result()
            raise RuntimeError("ledger ingest stopped")


class Ledger(Protocol):
    """What the gateway calls: `begin` before a call may reach the upstream, `finish` with its ledger row.

    `begin` raises ServiceUnavailable when the call could not be recorded (the gateway then refuses it);
    `finish` never raises. Both run on the event loop and cost microseconds.
    """

    @property
    def healthy(self) -> bool:
        """Whether calls can be recorded now."""

    @property
    def store_ready(self) -> bool:
        """Whether ingest has its ClickHouse store open."""

    async def start(self) -> None:
        """Open the spill and start the background work."""

    def begin(self, row: dict[str, Any]) -> None:
        """Record that a call started."""

    def finish(self, row: dict[str, Any]) -> None:
        """Record a finished call's ledger row."""

    async def drain(self) -> None:
        """Wait until every row recorded so far is acknowledged."""

    def backlog(self) -> tuple[int, int]:
        """(rows, bytes) recorded but not yet acknowledged."""

    async def close(self, grace: float | None = None) -> None:
        """Stop accepting, flush what can be flushed within `grace` seconds, release the spill."""


class NullLedgerWriter:
    """A ledger that records nothing (the ledger disabled, to measure the request path without it)."""

    @property
    def healthy(self) -> bool:
        """Always able to (not) record."""
        return True

    @property
    def store_ready(self) -> bool:
        """No store is needed."""
        return True

    async def start(self) -> None:
        """Nothing to open."""

    def begin(self, row: dict[str, Any]) -> None:
        """Forget the start."""

    def finish(self, row: dict[str, Any]) -> None:
        """Forget the row."""

    async def drain(self) -> None:
        """Nothing is ever pending."""

    def backlog(self) -> tuple[int, int]:
        """Always empty."""
        return 0, 0

    async def close(self, grace: float | None = None) -> None:
        """Nothing to flush."""
