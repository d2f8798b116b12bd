"""A gateway process killed with SIGKILL loses no call and duplicates none: the next start-up replays its spill."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

COMMON = """
import asyncio, json, sys, time
from prometheus_client import CollectorRegistry
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore
from core.settings import Settings
from gateway.ledger import LedgerWriter

data = sys.argv[1]
settings = Settings(
    data_dir=data, clickhouse_url=f"chdb://{data}/clickhouse", clickhouse_database="crash", _env_file=None,
    ledger_batch_rows=20, ledger_flush_interval=0.01, ledger_segment_bytes=32768,
)
T0 = int(time.time() * 1_000_000)

def start(i):
    return {"request_id": f"req-{i:05d}", "received_at": T0 + i, "tenant_id": "t1", "endpoint": "chat.completions",
            "requested_model": "gpt-4o-mini", "served_model": "gpt-4o-mini", "provider": "openai"}

def finish(i):
    return dict(start(i), finished_at=T0 + i + 900, status="ok", http_status=200, cost_usd="0.000010000",
                baseline_cost_usd="0.000010000", savings_usd="0", latency_ms=0.9)

def open_writer():
    store = ClickHouseStore.open(settings)
    upgrade_clickhouse(store)
    return store, LedgerWriter(settings, store, CollectorRegistry())
"""

VICTIM = COMMON + """
async def main(n, m):
    store, writer = open_writer()
    await writer.start()
    for i in range(n):
        writer.begin(start(i))
    for i in range(m):
        writer.finish(finish(i))
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(int(sys.argv[2]), int(sys.argv[3])))
"""

SUCCESSOR = COMMON + """
async def main():
    store, writer = open_writer()
    await writer.start()
    await asyncio.wait_for(writer.drain(), 60)
    await writer.close(10)
    statuses = dict(store.query("SELECT status, count() FROM llm_calls GROUP BY status"))
    total, unique = store.query("SELECT count(), uniqExact(request_id) FROM llm_calls")[0]
    print(json.dumps({"statuses": statuses, "total": total, "unique": unique}), flush=True)
    store.close()

asyncio.run(main())
"""


def python(script: str, *args: str) -> list[str]:
    return [sys.executable, "-c", script, *args]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
    return env | {"PYTHONPATH": str(REPO)}


def wait_for_ready(victim: subprocess.Popen[str], seconds: float) -> None:
    assert victim.stdout is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        readable, _, _ = select.select([victim.stdout], [], [], 0.5)
        if readable:
            line = victim.stdout.readline()
            assert line, f"victim exited early with {victim.poll()}"
            if line.strip() == "ready":
                return
    pytest.fail("the victim process never became ready")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.15])
def test_sigkill_mid_flight_is_recovered_exactly_once(tmp_path: Path, delay: float) -> None:
    started, finished = 400, 250
    victim = subprocess.Popen(
        python(VICTIM, str(tmp_path), str(started), str(finished)),
        stdout=subprocess.PIPE, text=True, env=child_env(), cwd=REPO,
    )
    try:
        wait_for_ready(victim, 60)
        time.sleep(delay)  # 0: nothing ingested yet; 0.15: killed while batches are being sent
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        assert victim.stdout is not None
        victim.stdout.close()
    successor = subprocess.run(
        python(SUCCESSOR, str(tmp_path)), capture_output=True, text=True, env=child_env(), cwd=REPO, timeout=120,
    )
    assert successor.returncode == 0, successor.stderr[-3000:]
    result = json.loads(successor.stdout.strip().splitlines()[-1])
    assert result == {
        "statuses": {"ok": finished, "gateway_crash": started - finished},
        "total": started,
        "unique": started,
    }
    assert list((tmp_path / "spill").iterdir()) == []
