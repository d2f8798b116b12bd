"""Embeddings micro-batching on a bursty replay: throughput, latency and provider calls with the policy on and off.

The arrival times of the Azure LLM inference trace (code, 2023: 8 819 arrivals over 57 minutes, 47% of them at most
50 ms after the previous one) are replayed open-loop, compressed `--speed` times (100 by default: ~260 requests/s
on average, bursts far above), each arrival an embeddings request whose input is as long as the trace's context
tokens (unique text, 256 dimensions, base64 as the SDK asks, spread over 4 tenants in turn). The provider (the fake,
on its own core) answers each call after `--upstream-ms` (20 by default), whatever its size, as a real one roughly
does. Netra runs as a process on the other core, ledger on.

In one run, on one Netra and one fake: the same schedule sent straight to the fake (`direct`), through Netra with
no batch policy (`off`), with the issue's policy (`on`: window 5 ms, 512 inputs), and with none again (`off_again`,
the A/A pair that gives the noise floor). Per run: achieved throughput, latency p50/p99 from each request's
scheduled time, provider calls, Netra's CPU per request. Prints JSON.

    python -m bench.microbatch [--quick] [--speed 100] [--upstream-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop

from bench.loadgen import _Connection, build_request, percentile
from bench.procs import cores, cpu_seconds, create_keys, free_port, pin, start_fake, start_netra, swap_policies
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TRACE_PATH = "shared/data/traces/azure_llm_2023/AzureLLMInferenceTrace_code.csv"
# ../shared beside the checkout (a worktree under wt/ looks one level further up).
TRACES = [ROOT.parent / TRACE_PATH, ROOT.parents[1] / TRACE_PATH]
POLICY = "kind: batch\nname: coalesce embeddings\nmatch: {endpoints: [embeddings]}\nwindow_ms: 5\nmax_inputs: 512\n"
TENANTS = 4
UPSTREAM = "text-embedding-3-small-slow-{delay}"
CONFIG = """providers:
  - {{name: fake, kind: openai, base_url: 'http://127.0.0.1:{port}/v1', api_key: sk-fake-upstream-key}}
models:
  - {{name: text-embedding-3-small, provider: fake, upstream: text-embedding-3-small-slow-{delay}}}
"""


def arrivals(path: Path, speed: float, limit: int | None) -> list[tuple[float, int]]:
    """(seconds from the first arrival, compressed `speed` times; context tokens) of the trace's requests."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    stamps = [datetime.fromisoformat(row["TIMESTAMP"][:26]) for row in rows]
    return [((stamp - stamps[0]).total_seconds() / speed, int(row["ContextTokens"])) for stamp, row in
            zip(stamps, rows, strict=True)]


def bodies(schedule: list[tuple[float, int]], run: str, model: str) -> list[bytes]:
    """One embeddings body per arrival: unique text of four characters per context token of the trace."""
    filler = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do " * 600
    return [
        orjson.dumps({"model": model, "encoding_format": "base64", "dimensions": 256,
                      "input": f"{run} {i} {filler[: tokens * 4]}"})
        for i, (_, tokens) in enumerate(schedule)
    ]


class OpenLoop:
    """Sends each request at its scheduled time on an idle keep-alive connection (a new one when none is idle)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[_Connection] = []
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.last_done = 0.0

    async def fire(self, request: bytes, scheduled: float) -> None:
        """One request; its latency counts from when it was due."""
        conn = self.idle.pop() if self.idle else None
        while conn is not None and conn.transport.is_closing():  # the server closed it while idle (keep-alive)
            conn = self.idle.pop() if self.idle else None
        if conn is None:
            _, conn = await asyncio.get_running_loop().create_connection(_Connection, "127.0.0.1", self.port)
        status, _ = await conn.request(request)
        self.last_done = time.perf_counter()
        self.latencies.append(self.last_done - scheduled)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.idle.append(conn)

    async def replay(self, schedule: list[tuple[float, int]], requests: list[bytes]) -> float:
        """Every request at its time; returns the seconds from the first send to the last answer."""
        start = time.perf_counter() + 0.05
        tasks = []
        for (offset, _), request in zip(schedule, requests, strict=True):
            due = start + offset
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.fire(request, due)))
        await asyncio.gather(*tasks)
        for conn in self.idle:
            conn.transport.close()
        return self.last_done - start


def fake_calls(fake_port: int) -> int:
    """Requests the fake provider has received so far."""
    return int(httpx.get(f"http://127.0.0.1:{fake_port}/_fake/stats").json()["requests"])


async def one_run(
    port: int, headers: list[dict[str, str]], schedule: list[tuple[float, int]], run: str, pid: int | None,
    fake_port: int, delay: int,
) -> dict[str, Any]:
    """Replay the schedule against `port` (Netra, or the fake with `pid` None) and measure."""
    # Straight to the fake, the body names the upstream model (its latency is chosen by name).
    model = "text-embedding-3-small" if pid else UPSTREAM.format(delay=delay)
    requests = [build_request("127.0.0.1", port, "/v1/embeddings", body, headers[i % len(headers)])
                for i, body in enumerate(bodies(schedule, run, model))]
    calls, cpu = fake_calls(fake_port), cpu_seconds(pid) if pid else 0.0
    loop = OpenLoop(port)
    elapsed = await loop.replay(schedule, requests)
    bad = {status: n for status, n in loop.statuses.items() if status != 200}
    if bad:
        raise RuntimeError(f"non-200 answers in run {run}: {bad}")
    lat = sorted(loop.latencies)
    row: dict[str, Any] = {
        "requests": len(lat), "rps": round(len(lat) / elapsed, 1),
        "p50_ms": round(percentile(lat, 0.5) * 1000, 1), "p99_ms": round(percentile(lat, 0.99) * 1000, 1),
        "provider_calls": fake_calls(fake_port) - calls, "connections": len(loop.idle),
    }
    if pid:
        row["netra_cpu_ms_per_request"] = round((cpu_seconds(pid) - cpu) * 1000 / len(lat), 3)
    return row


async def set_policy(settings: Settings, active: list[str], on: bool) -> list[str]:
    """Activate the batch policy (on) or retire the active one (off); returns the active ids."""
    added = await swap_policies(settings, active, POLICY if on else "")
    await asyncio.sleep(1.0)  # the gateway's poll (0.2 s here) loads the new snapshot
    return added


async def measure(
    netra_port: int, netra_pid: int, fake_port: int, keys: list[str], data: Path, schedule: list[tuple[float, int]],
    delay: int,
) -> dict[str, Any]:
    """direct, off, on, off_again: one schedule, one Netra, one fake."""
    settings = Settings(data_dir=data / "data", _env_file=None)  # type: ignore[call-arg]
    netra_headers = [{"authorization": f"Bearer {key}"} for key in keys]
    fake_headers = [{"authorization": "Bearer sk-fake-upstream-key"}]
    warm = schedule[:200]
    await one_run(netra_port, netra_headers, warm, "warm", netra_pid, fake_port, delay)
    out: dict[str, Any] = {"direct": await one_run(fake_port, fake_headers, schedule, "direct", None, fake_port, delay)}
    out["direct"].pop("provider_calls")
    out["off"] = await one_run(netra_port, netra_headers, schedule, "off", netra_pid, fake_port, delay)
    active = await set_policy(settings, [], on=True)
    out["on"] = await one_run(netra_port, netra_headers, schedule, "on", netra_pid, fake_port, delay)
    await set_policy(settings, active, on=False)
    out["off_again"] = await one_run(netra_port, netra_headers, schedule, "off-again", netra_pid, fake_port, delay)
    return out


def ratios(out: dict[str, Any]) -> dict[str, Any]:
    """The figures that matter, as ratios within the run."""
    on, off, again, direct = out["on"], out["off"], out["off_again"], out["direct"]
    return {
        "throughput_on_over_off": round(on["rps"] / off["rps"], 3),
        "throughput_aa_off_again_over_off": round(again["rps"] / off["rps"], 3),
        "throughput_off_over_direct": round(off["rps"] / direct["rps"], 3),
        "provider_calls_saved": off["provider_calls"] - on["provider_calls"],
        "provider_calls_saved_pct": round(100 * (1 - on["provider_calls"] / off["provider_calls"]), 1),
        "mean_requests_per_call_on": round(on["requests"] / on["provider_calls"], 2),
    }


def environment(data: Path, fake_port: int, upstream_ms: int) -> dict[str, str]:
    """Netra's environment: the fake behind it, the ledger on, policies polled every 0.2 s."""
    config = data / "netra.yaml"
    config.write_text(CONFIG.format(port=fake_port, delay=upstream_ms))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
    return {**clean, "NETRA_DATA_DIR": str(data / "data"), "NETRA_CONFIG": str(config),
            "NETRA_POLICY_POLL_INTERVAL": "0.2"}


def run(quick: bool, speed: float, upstream_ms: int) -> dict[str, Any]:
    """Start the fake and Netra (each on its own core), replay, stop everything."""
    cpus = cores()
    netra_cpu, other_cpu = cpus[0], cpus[-1]
    pin(other_cpu)
    trace = next((path for path in TRACES if path.exists()), TRACES[0])
    schedule = arrivals(trace, speed, 2500 if quick else None)
    fake, fake_port = start_fake(other_cpu)
    try:
        with tempfile.TemporaryDirectory(prefix="netra-microbatch-bench-") as tmp:
            data = Path(tmp)
            env = environment(data, fake_port, upstream_ms)
            keys = create_keys(data, TENANTS, tier="enterprise")
            netra = start_netra(env, free_port(), netra_cpu, data / "netra.log")
            try:
                out = uvloop.run(measure(netra.port, netra.pid, fake_port, keys, data, schedule, upstream_ms))
            finally:
                netra.stop()
    finally:
        fake.terminate()
        fake.wait()
    span = schedule[-1][0]
    return {"arrivals": len(schedule), "speed": speed, "replay_seconds": round(span, 1),
            "offered_rps": round(len(schedule) / span, 1), "upstream_ms": upstream_ms, **out, **ratios(out)}


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first 2 500 arrivals only")
    parser.add_argument("--speed", type=float, default=100.0, help="how many times faster than the trace")
    parser.add_argument("--upstream-ms", type=int, default=20, help="the fake provider's time per call")
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.speed, args.upstream_ms), indent=2))


if __name__ == "__main__":
    main()
