"""The ledger under process faults: SIGTERM under load flushes everything, kill -9 loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.prices import compute_cost, load_seed
from core.usage import Usage
from tests.e2e.harness import Netra, keyed_netra

pytestmark = pytest.mark.slow
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count me"}]}
PRICE = load_seed().price_for("gpt-4o-mini")


@pytest.fixture
def netra(tmp_path: Path, fake_url: str) -> Iterator[Netra]:
    """Netra with one enterprise tenant and its key (TEST_KEY), not started."""
    yield from keyed_netra(tmp_path, fake_url)


class Clients:
    """Concurrent callers that remember what each request id got back."""

    def __init__(self, netra: Netra) -> None:
        self.netra = netra
        self.outcomes: dict[str, int | str] = {}
        self.usages: dict[str, dict[str, Any]] = {}
        self.started_streams: set[str] = set()
        self.stop = False

    def headers(self, rid: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.netra.env['TEST_KEY']}", "x-request-id": rid}

    async def caller(self, http: httpx.AsyncClient, name: str) -> None:
        n = 0
        while not self.stop:
            rid, n = f"{name}-{n}", n + 1
            try:
                reply = await http.post("/chat/completions", json=CHAT, headers=self.headers(rid))
            except httpx.HTTPError as exc:
                self.outcomes[rid] = type(exc).__name__
                await asyncio.sleep(0.05)
                continue
            self.outcomes[rid] = reply.status_code
            if reply.status_code == 200:
                self.usages[rid] = reply.json()["usage"]

    async def streamer(self, http: httpx.AsyncClient, rid: str) -> None:
        body = {**CHAT, "model": "drip", "stream": True}
        try:
            async with http.stream("POST", "/chat/completions", json=body, headers=self.headers(rid)) as reply:
                async for _ in reply.aiter_bytes():
                    self.started_streams.add(rid)
            self.outcomes[rid] = reply.status_code
        except httpx.HTTPError as exc:
            self.outcomes[rid] = type(exc).__name__


def ledger_rows(netra: Netra) -> list[dict[str, Any]]:
    out = netra.cli("ledger", "export", "--format", "jsonl").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def assert_no_duplicates(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_id = {row["request_id"]: row for row in rows}
    assert len(by_id) == len(rows), "a request id appears twice in the ledger"
    return by_id


async def run_load_then(netra: Netra, clients: Clients, sig: int, streams: int) -> None:
    async with httpx.AsyncClient(base_url=netra.url, timeout=30) as http:
        tasks = [asyncio.create_task(clients.caller(http, f"c{i}")) for i in range(8)]
        tasks += [asyncio.create_task(clients.streamer(http, f"s{i}")) for i in range(streams)]
        while len([r for r in clients.outcomes if r.startswith("c")]) < 300 or len(clients.started_streams) < streams:
            await asyncio.sleep(0.02)
        assert netra.proc is not None
        netra.proc.send_signal(sig)
        await asyncio.sleep(0.5 if sig == signal.SIGKILL else 0)
        clients.stop = True
        await asyncio.gather(*tasks)
    assert netra.proc is not None
    netra.proc.wait(timeout=60)


def test_sigterm_under_load_flushes_every_call_before_exit(netra: Netra) -> None:
    netra.start()
    clients = Clients(netra)
    asyncio.run(run_load_then(netra, clients, signal.SIGTERM, streams=3))
    # A clean shutdown on SIGTERM exits 0 (uvicorn would re-raise the signal; GatewayServer does not).
    assert netra.proc is not None and netra.proc.returncode == 0
    assert "Application shutdown complete" in netra.log.read_text()
    netra.proc = None
    spill = netra.data_dir / "data" / "spill"
    assert not list(spill.rglob("*.seg")), "SIGTERM must leave nothing unflushed on disk"
    rows = assert_no_duplicates(ledger_rows(netra))
    served = {rid for rid, outcome in clients.outcomes.items() if outcome == 200}
    assert served <= set(rows), "a call a client saw answered is missing from the ledger"
    assert all(rows[rid]["status"] == "ok" for rid in served if rid.startswith("c"))
    assert set(rows) <= set(clients.outcomes), "the ledger holds a call no client made"


def test_kill_9_under_load_loses_nothing_and_marks_the_calls_it_cut(netra: Netra) -> None:
    netra.start()
    clients = Clients(netra)
    asyncio.run(run_load_then(netra, clients, signal.SIGKILL, streams=4))
    netra.proc = None
    netra.start()  # the restart replays what the killed process left on disk
    netra.stop()
    rows = assert_no_duplicates(ledger_rows(netra))
    served = {rid for rid, outcome in clients.outcomes.items() if outcome == 200 and rid.startswith("c")}
    assert served <= set(rows) and all(rows[rid]["status"] == "ok" for rid in served)
    for rid in clients.started_streams:  # in flight when the process died
        assert rows[rid]["status"] == "gateway_crash", rows[rid]
    assert set(rows) <= set(clients.outcomes)


def test_summary_matches_the_clients_call_for_call_and_cent_for_cent(netra: Netra) -> None:
    netra.start()
    running = json.loads(netra.cli("ledger", "summary", "--json").stdout)  # readable while Netra runs
    assert running["requests"] == 0
    clients = Clients(netra)
    asyncio.run(run_load_then(netra, clients, signal.SIGTERM, streams=0))
    netra.proc = None
    summary = json.loads(netra.cli("ledger", "summary", "--json").stdout)
    answered = [rid for rid, outcome in clients.outcomes.items() if outcome == 200]
    assert summary["requests"] == len(answered) == summary["by_status"]["ok"]
    assert PRICE is not None
    expected = sum((compute_cost(Usage(u["prompt_tokens"], u["completion_tokens"]), PRICE).usd or Decimal(0)
                    for u in clients.usages.values()), Decimal(0))
    assert Decimal(summary["cost_usd"]) == expected
    assert summary["prompt_tokens"] == sum(u["prompt_tokens"] for u in clients.usages.values())


def ingest_processes(pid: int) -> set[int]:
    """The gateway's children: the data dir's ledger process, which it started."""
    return {int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()}


async def kill_the_ingester_under_load(netra: Netra, clients: Clients) -> None:
    assert netra.proc is not None
    pid = netra.proc.pid
    async with httpx.AsyncClient(base_url=netra.url, timeout=30) as http:
        tasks = [asyncio.create_task(clients.caller(http, f"c{i}")) for i in range(8)]
        while len(clients.outcomes) < 200:
            await asyncio.sleep(0.02)
        killed = ingest_processes(pid)
        assert killed, "netra run starts the ledger process as its child"
        for child in killed:
            os.kill(child, signal.SIGKILL)
        seen = len(clients.outcomes)
        async with asyncio.timeout(60):  # the gateway starts a new ingest process within seconds
            while len(clients.outcomes) < seen + 300 or not ingest_processes(pid) - killed:
                await asyncio.sleep(0.05)
        clients.stop = True
        await asyncio.gather(*tasks)
    netra.proc.send_signal(signal.SIGTERM)
    netra.proc.wait(timeout=60)


def test_a_killed_ingest_process_is_restarted_and_loses_nothing(netra: Netra) -> None:
    netra.start()
    clients = Clients(netra)
    asyncio.run(kill_the_ingester_under_load(netra, clients))
    netra.proc = None
    assert set(clients.outcomes.values()) == {200}, "the gateway must keep serving while its ingest restarts"
    assert not list((netra.data_dir / "data" / "spill").rglob("*.seg")), "SIGTERM must flush everything"
    rows = assert_no_duplicates(ledger_rows(netra))
    assert set(rows) == set(clients.outcomes)
    assert all(row["status"] == "ok" for row in rows.values())
