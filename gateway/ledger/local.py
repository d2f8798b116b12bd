"""In-process ingest: the writer's own segments and dead writers' spills go to a sink this process holds.

Used with a sink object (tests, and any deployment that passes one); `netra run` and `netra gateway` leave ingest
to the data dir's ledger process (remote.py, ledgerd.py), which runs the same Ingestor over the same files.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from core.settings import Settings
from gateway.ledger.base import IngestTask
from gateway.ledger.ingest import IDLE_POLL, Ingestor, Waker
from gateway.ledger.journal import Journal
from gateway.ledger.metrics import Backlog
from gateway.ledger.replay import recover_instances
from gateway.ledger.spill import segment_path

log = logging.getLogger("netra.ledger")


class LocalIngest(IngestTask):
    """Follows the journal's segments in this process, after replaying every dead writer's spill."""

    def __init__(
        self, settings: Settings, journal: Journal, ingestor: Ingestor, backlog: Backlog, waker: Waker
    ) -> None:
        self._spill_dir = settings.spill_dir
        self._journal = journal
        self._backlog = backlog
        self._ingestor = ingestor
        self._waker = waker
        self.recovered = False
        self.store_ready = True  # the sink is this process's own
        self.ingested = (0, 0)  # own (segment, offset) before which every finish record is acknowledged

    def start(self) -> None:
        """Start the ingest task."""
        self._launch(self._loop(), "ledger-ingest")

    def hurry(self, waiting: int) -> None:
        """Wake ingest; `waiting` (+1/-1) counts drains that want batches sent as soon as the reader catches up."""
        self._waker.urgent += waiting
        self._waker.poke()

    async def _loop(self) -> None:
        journal = self._journal
        await recover_instances(self._spill_dir, journal.instance, self._ingestor, self._backlog)
        self.recovered = True
        while True:
            numbers = journal.numbers
            if not numbers or journal.directory is None:
                self._waker.arm()
                await self._waker.wait(1, IDLE_POLL)
                continue
            number = numbers[0]
            path = segment_path(journal.directory, number)
            live, report = partial(journal.live, number), partial(self._report, number)
            await self._ingestor.ingest_segment(journal.instance, path, live, report)
            numbers.popleft()

    def _report(self, number: int, offset: int) -> None:
        self.ingested = (number, offset)

    async def stop(self) -> None:
        """Stop following (the segments stay on disk), then the ingest thread."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            for result in await asyncio.gather(task, return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("ledger ingest had failed", exc_info=result)
        await self._ingestor.close()
