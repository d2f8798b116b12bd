"""Group commit moves to the ingest process while it runs, and comes back to the gateway when it does not."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from core.settings import Settings
from gateway.ledger import LedgerWriter
from gateway.ledger.remote import RemoteIngest
from tests.integration.test_ledger_writer import finish_row, start_row


async def until(condition: Callable[[], bool], within: float = 60.0) -> None:
    """Wait for `condition`, failing after `within` seconds."""
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.02)


async def test_the_ingest_process_syncs_the_spill_and_hands_it_back_when_it_dies(settings: Settings) -> None:
    # Nothing answers there: group commit must not wait for ClickHouse, only the inserts do.
    settings = settings.model_copy(update={"ledger_ingest": "process", "clickhouse_url": "http://127.0.0.1:1"})
    writer = LedgerWriter(settings, None, CollectorRegistry())
    ingest = writer._ingest
    assert isinstance(ingest, RemoteIngest)
    await writer.start()
    try:
        await until(lambda: ingest.syncing)
        assert ingest._proc is not None
        os.kill(ingest._proc.pid, signal.SIGKILL)
        await until(lambda: not ingest.syncing)  # the gateway fsyncs its own spill again
        writer.begin(start_row(1))
        writer.finish(finish_row(1))
        assert writer.healthy and writer.backlog()[0] == 1
        await until(lambda: ingest.syncing)  # a new ingest process took it over
    finally:
        await writer.close(0.5)
