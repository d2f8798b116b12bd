"""A batch's output read through Netra: its lines written to the ledger once, then the file noted as ledgered.

Order matters: rows first, the note after. A crash between the two leaves the file unnoted, so the next read writes
the same rows again (same request ids and times), which ClickHouse deduplicates; the reverse order could lose them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from core.batch_files import BATCH, FILE, BatchObject, mark_ledgered, owned
from core.callrow import LedgerRow
from core.errors import ServiceUnavailable
from gateway.batch_api.common import Caller
from gateway.batch_api.ledger import BatchRun, line_row, parse_lines

# The batch's end, from the first of these its object carries.
END_FIELDS = ("completed_at", "cancelled_at", "expired_at", "failed_at", "finalizing_at")


def _seconds(body: dict[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return None


def batch_run(who: Caller, batch: BatchObject, lines: dict[str, list[str]]) -> BatchRun:
    """What the rows of this batch share, from its stored object (times in epoch microseconds)."""
    body = batch.body
    created = _seconds(body, ("created_at",)) or int(batch.created_at.timestamp())
    ended = max(_seconds(body, END_FIELDS) or created, created)
    return BatchRun(
        batch_id=batch.object_id, tenant_id=batch.tenant_id, tenant_name=who.principal.tenant_name,
        key_id=batch.key_id, provider=batch.provider, endpoint=batch.purpose.removeprefix("/v1").lstrip("/"),
        received_us=created * 1_000_000, finished_us=ended * 1_000_000, lines=lines,
    )


async def _run_of(who: Caller, row: BatchObject) -> BatchRun | None:
    async with who.state.sessions() as session:
        batch = await owned(session, row.tenant_id, BATCH, str(row.batch_id), deleted_too=True)
        if batch is None:
            return None
        input_id = str(batch.body.get("input_file_id") or "")
        source = await owned(session, row.tenant_id, FILE, input_id, deleted_too=True)
    return batch_run(who, batch, dict(source.lines or {}) if source is not None else {})


def _rows(who: Caller, run: BatchRun, content: bytes) -> list[LedgerRow]:
    state = who.state
    return [line_row(line, run, state.prices, state.metrics) for line in parse_lines(content)]


async def ledger_output(who: Caller, row: BatchObject, content: bytes) -> None:
    """Write one ledger row per line of a batch's output or error file, unless that was done before."""
    ledger = who.state.ledger
    if not ledger.healthy:
        # As for a billable call: refused rather than handed out unrecorded.
        raise ServiceUnavailable(
            "The batch results cannot be recorded right now; retry later.", code="logging_unavailable",
            headers={"retry-after": "5"},
        )
    run = await _run_of(who, row)
    if run is None:
        return
    for built in await asyncio.to_thread(_rows, who, run, content):
        ledger.finish(built.as_dict())
    if not ledger.healthy:
        return  # some rows wait in memory for the spill: not noted, so a later read writes them again
    async with who.state.sessions() as session:
        await mark_ledgered(session, row.seq)
        await session.commit()

