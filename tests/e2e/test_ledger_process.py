"""One ledger process per data dir: the ledger is readable while Netra runs, several workers share it, and its
death under load loses and doubles nothing (a surviving gateway process starts the next one)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.ledger_socket import lock_holder
from gateway.ledger.spill import FINISH, records
from tests.e2e.harness import Netra, keyed_netra
from tests.e2e.test_ledger_faults import CHAT, Clients, assert_no_duplicates, ledger_rows

pytestmark = pytest.mark.slow


@pytest.fixture
def netra(tmp_path: Path, fake_url: str) -> Iterator[Netra]:
    """Netra with one enterprise tenant and its key (TEST_KEY), not started."""
    yield from keyed_netra(tmp_path, fake_url)


def call(netra: Netra, rid: str, model: str = "gpt-4o-mini") -> int:
    headers = {"authorization": f"Bearer {netra.env['TEST_KEY']}", "x-request-id": rid}
    return httpx.post(f"{netra.url}/chat/completions", json={**CHAT, "model": model}, headers=headers,
                      timeout=30).status_code


def rows_once_in(netra: Netra, wanted: set[str]) -> dict[str, dict[str, object]]:
    """The ledger's rows (each request id once) as soon as they include `wanted`, read while Netra runs."""
    deadline = time.monotonic() + 60
    while True:
        rows = assert_no_duplicates(ledger_rows(netra))
        if wanted <= set(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_summary_and_export_read_the_ledger_while_netra_runs(netra: Netra) -> None:
    netra.start()
    outcomes = {f"live-{i}": call(netra, f"live-{i}") for i in range(5)}
    outcomes["live-missing"] = call(netra, "live-missing", model="no-such-model")
    assert outcomes == {**dict.fromkeys((f"live-{i}" for i in range(5)), 200), "live-missing": 404}
    rows = rows_once_in(netra, set(outcomes))
    assert set(rows) == set(outcomes)
    assert {rid: row["http_status"] for rid, row in rows.items()} == outcomes
    summary = json.loads(netra.cli("ledger", "summary", "--json").stdout)
    assert summary["requests"] == 6 and summary["by_status"] == {"ok": 5, "invalid_request": 1}
    csv = netra.cli("ledger", "export", "--format", "csv", "--since", "1h").stdout.splitlines()
    assert csv[0].startswith("request_id,") and len(csv) == 7
    # Reading did not disturb serving: the next call is answered and lands too.
    assert call(netra, "live-after") == 200
    assert "live-after" in rows_once_in(netra, {"live-after"})
    assert netra.stop() == 0


def spilled_finishes(data_dir: Path) -> dict[str, set[str]]:
    """Per gateway process (spill instance): the request ids of the finished calls in its segments on disk."""
    spill = data_dir / "data" / "spill"
    return {
        instance.name: {str(row["request_id"]) for seg in sorted(instance.glob("*.seg"))
                        for kind, row, _ in records(seg) if kind == FINISH}
        for instance in spill.iterdir() if instance.is_dir() and not instance.name.startswith(".")
    }


async def load(netra: Netra, clients: Clients, until: int) -> None:
    """Callers on fresh connections (so the kernel spreads them over the workers) until `until` outcomes."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=netra.url, timeout=30, limits=limits) as http:
        tasks = [asyncio.create_task(clients.caller(http, f"w{i}")) for i in range(8)]
        while len(clients.outcomes) < until:
            await asyncio.sleep(0.02)
        clients.stop = True
        await asyncio.gather(*tasks)


def test_two_workers_on_embedded_chdb_land_every_call_exactly_once(netra: Netra) -> None:
    netra.start("gateway", "--workers", "2")
    clients = Clients(netra)
    asyncio.run(load(netra, clients, 300))
    per_worker = spilled_finishes(netra.data_dir)
    assert len(per_worker) == 2, "each worker spills to its own instance directory"
    assert all(per_worker.values()), f"both workers served calls: {[len(ids) for ids in per_worker.values()]}"
    assert set(clients.outcomes.values()) == {200}
    live = rows_once_in(netra, set(clients.outcomes))
    assert set(live) == set(clients.outcomes)
    assert netra.stop() == 0
    rows = assert_no_duplicates(ledger_rows(netra))
    assert set(rows) == set(clients.outcomes) and all(row["status"] == "ok" for row in rows.values())


def wait_for_new_ledger(netra: Netra, old: int) -> int:
    deadline = time.monotonic() + 60
    while (pid := lock_holder(netra.data_dir / "data")) in (None, old):
        assert time.monotonic() < deadline, "no gateway process started a new ledger process"
        time.sleep(0.05)
    assert pid is not None
    return pid


async def kill_the_ledger_under_load(netra: Netra, clients: Clients) -> tuple[int, int]:
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=netra.url, timeout=30, limits=limits) as http:
        tasks = [asyncio.create_task(clients.caller(http, f"k{i}")) for i in range(8)]
        while len(clients.outcomes) < 200:
            await asyncio.sleep(0.02)
        killed = lock_holder(netra.data_dir / "data")
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        seen = len(clients.outcomes)
        successor = await asyncio.to_thread(wait_for_new_ledger, netra, killed)
        while len(clients.outcomes) < seen + 300:
            await asyncio.sleep(0.05)
        clients.stop = True
        await asyncio.gather(*tasks)
    return killed, successor


def test_a_killed_ledger_process_is_replaced_and_loses_and_doubles_nothing(netra: Netra) -> None:
    netra.start("gateway", "--workers", "2")
    clients = Clients(netra)
    killed, successor = asyncio.run(kill_the_ledger_under_load(netra, clients))
    assert successor != killed
    assert set(clients.outcomes.values()) == {200}, "the gateways keep serving while the ledger process restarts"
    rows = rows_once_in(netra, set(clients.outcomes))  # read from the successor, while Netra runs
    assert set(rows) == set(clients.outcomes)
    assert netra.stop() == 0
    assert not list((netra.data_dir / "data" / "spill").rglob("*.seg")), "SIGTERM must flush everything"
    rows = assert_no_duplicates(ledger_rows(netra))
    assert set(rows) == set(clients.outcomes) and all(row["status"] == "ok" for row in rows.values())
