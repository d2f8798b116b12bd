"""`make bench`: Netra against a direct call to the fake provider, measured in the same run.

Netra runs as one process pinned to one core; the fake provider and this load generator share the other.
Prints a table and writes bench/out/results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

from bench.loadgen import LoadResult, build_request, percentile, run_load
from bench.procs import (
    ROOT,
    NetraProc,
    children,
    cores,
    cpu_seconds,
    create_keys,
    netra_env,
    pin,
    pin_children,
    rss_mb,
    start_fake,
    start_netra,
)
from tests.e2e.harness import free_port

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}
UPSTREAM_KEY = "sk-fake-upstream-key"


def requests_for(port: int, keys: list[str], stream: bool = False) -> list[bytes]:
    """One request per key (a connection per tenant keeps every tenant under its hourly limit)."""
    body = orjson.dumps({**CHAT, "stream": True} if stream else CHAT)
    return [build_request("127.0.0.1", port, "/v1/chat/completions", body, {"authorization": f"Bearer {k}"})
            for k in keys]


def checked(result: LoadResult) -> LoadResult:
    """The result, or an error when any answer was not a 200 (a benchmark of errors measures nothing)."""
    bad = {status: n for status, n in result.statuses.items() if status != 200}
    if bad:
        raise RuntimeError(f"non-200 answers during the benchmark: {bad}")
    return result


def ms(value: float) -> float:
    """Seconds to milliseconds, rounded for the table."""
    return round(value * 1000, 3)


async def latency(port: int, reqs: list[bytes], count: int) -> dict[str, float]:
    """p50/p99 at concurrency 1."""
    result = checked(await run_load("127.0.0.1", port, reqs, 1, 120, limit=count))
    return {"p50_ms": ms(percentile(result.latencies, 0.5)), "p99_ms": ms(percentile(result.latencies, 0.99))}


async def throughput(port: int, reqs: list[bytes], conc: int, seconds: float, pid: int | None) -> dict[str, Any]:
    """Requests per second at a concurrency, and Netra's CPU time per request when its pid is given."""
    before = cpu_seconds(pid) if pid else 0.0
    result = checked(await run_load("127.0.0.1", port, reqs, conc, seconds))
    row: dict[str, Any] = {"rps": round(result.rps), "statuses": result.statuses}
    if pid:
        row["cpu_ms_per_request"] = round((cpu_seconds(pid) - before) * 1000 / max(result.count, 1), 4)
    return row


async def first_event(port: int, reqs: list[bytes], count: int) -> dict[str, float]:
    """Streaming: time to the first `data:` event, p50/p99 at concurrency 1."""
    result = checked(await run_load("127.0.0.1", port, reqs, 1, 120, limit=count))
    return {"p50_ms": ms(percentile(result.first_events, 0.5)), "p99_ms": ms(percentile(result.first_events, 0.99))}


async def measure(fake_port: int, netra_port: int, keys: list[str], pid: int, quick: bool) -> dict[str, Any]:
    """Every figure of the table, direct and through Netra, in one run."""
    n, secs = (300, 2.0) if quick else (3000, 6.0)
    direct = requests_for(fake_port, [UPSTREAM_KEY] * len(keys))
    netra = requests_for(netra_port, keys)
    await throughput(netra_port, netra, 32, 2.0, None)  # warm-up
    out: dict[str, Any] = {"latency_c1": {"direct": await latency(fake_port, direct, n),
                                          "netra": await latency(netra_port, netra, n)}}
    out["rps"] = {str(c): {"direct": await throughput(fake_port, direct, c, secs, None),
                           "netra": await throughput(netra_port, netra, c, secs, pid)} for c in (1, 8, 32, 64)}
    out["first_event_c1"] = {
        "direct": await first_event(fake_port, requests_for(fake_port, [UPSTREAM_KEY], True), n // 2),
        "netra": await first_event(netra_port, requests_for(netra_port, keys, True), n // 2),
    }
    out["rss_mb"] = round(rss_mb(pid), 1)
    return out


def _ingest_cpu(pid: int) -> float:
    return sum(cpu_seconds(child) for child in children(pid))


async def paired_round(on: NetraProc, off: NetraProc, keys: list[str], seconds: float, on_first: bool) -> Any:
    """One ledger-on and one ledger-off c=32 run, in the given order; CPU per request of each side."""
    async def run_on() -> dict[str, Any]:
        before, ingest_before = cpu_seconds(on.pid), _ingest_cpu(on.pid)
        row = await throughput(on.port, requests_for(on.port, keys), 32, seconds, None)
        gateway_cpu = cpu_seconds(on.pid) - before
        # The ingest process inserts up to a flush interval later: count that CPU too before the next run.
        await asyncio.sleep(6.0)
        requests = max(row["rps"] * seconds, 1)
        row["cpu_ms_per_request"] = round(gateway_cpu * 1000 / requests, 4)
        row["ingest_cpu_ms_per_request"] = round((_ingest_cpu(on.pid) - ingest_before) * 1000 / requests, 4)
        return row

    async def run_off() -> dict[str, Any]:
        return await throughput(off.port, requests_for(off.port, keys), 32, seconds, off.pid)

    if on_first:
        return await run_on(), await run_off()
    off_row = await run_off()
    return await run_on(), off_row


def median(values: list[float]) -> float:
    """The middle value (the upper one of an even count)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


async def ledger_cost(on: NetraProc, off: NetraProc, keys: list[str], quick: bool) -> dict[str, Any]:
    """c=32 with the ledger on and off, alternated in rounds so both see the same machine noise."""
    seconds = 2.0 if quick else 6.0
    rounds = [await paired_round(on, off, keys, seconds, i % 2 == 0) for i in range(2 if quick else 8)]
    n = 300 if quick else 3000
    latency_off = await latency(off.port, requests_for(off.port, keys), n)
    first_off = await first_event(off.port, requests_for(off.port, keys, True), n // 2)
    return {
        "rounds": rounds,
        "median_throughput_cost": round(median([1 - a["rps"] / b["rps"] for a, b in rounds]), 3),
        "median_cpu_ms_per_request": round(median([a["cpu_ms_per_request"] - b["cpu_ms_per_request"]
                                                    for a, b in rounds]), 4),
        "median_gateway_cpu_cost": round(median([1 - b["cpu_ms_per_request"] / a["cpu_ms_per_request"]
                                                  for a, b in rounds]), 3),
        "ingest_cpu_ms_per_request": round(median([a["ingest_cpu_ms_per_request"] for a, _ in rounds]), 4),
        "rss_mb_off": round(rss_mb(off.pid), 1),
        "rss_mb_ingest": round(sum(rss_mb(child) for child in children(on.pid)), 1),
        "latency_c1_off": latency_off, "first_event_c1_off": first_off,
    }


async def bare_proxy(fake_port: int, cpu: int, quick: bool) -> dict[str, Any]:
    """The floor on this machine: a bare Starlette + aiohttp proxy (no auth, limits, logs or ledger), c=32."""
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-m", "bench.bare_proxy", str(port),
                             str(fake_port)], cwd=ROOT)
    try:
        reqs = requests_for(port, [UPSTREAM_KEY] * 32)
        for _ in range(100):
            try:
                await run_load("127.0.0.1", port, reqs, 32, 2.0)
                break
            except OSError:
                await asyncio.sleep(0.1)
        return await throughput(port, reqs, 32, 2.0 if quick else 6.0, proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def measure_both(netra: NetraProc, off: NetraProc, fake_port: int, keys: list[str], other_cpu: int,
                 quick: bool) -> dict[str, Any]:
    """The gateway figures, then the paired ledger rounds."""
    # The ledger's ingest process runs beside the load generator and the fake, off the gateway's core.
    time.sleep(3.0)
    pin_children(netra.pid, other_cpu)
    results = uvloop.run(measure(fake_port, netra.port, keys, netra.pid, quick))
    pin_children(netra.pid, other_cpu)  # again: threads the engine started since
    results["ledger"] = uvloop.run(ledger_cost(netra, off, keys, quick))
    return results


def run(quick: bool) -> dict[str, Any]:
    """Start the processes, measure, stop them."""
    cpus = cores()
    netra_cpu, other_cpu = cpus[0], cpus[-1]
    pin(other_cpu)
    fake, fake_port = start_fake(other_cpu)
    with tempfile.TemporaryDirectory(prefix="netra-bench-") as tmp:
        data = Path(tmp)
        keys = create_keys(data, 64)
        netra = start_netra(netra_env(data, fake_port, ledger=True), free_port(), netra_cpu, data / "netra.log")
        off = start_netra(netra_env(data, fake_port, ledger=False), free_port(), netra_cpu, data / "netra-off.log")
        try:
            results = measure_both(netra, off, fake_port, keys, other_cpu, quick)
        finally:
            netra.stop()
            off.stop()
        results["bare_proxy_c32"] = uvloop.run(bare_proxy(fake_port, netra_cpu, quick))
    fake.terminate()
    fake.wait()
    return results


def _ledger_lines(led: dict[str, Any]) -> list[str]:
    offs = [b["rps"] for _, b in led["rounds"]]
    return [
        f"ledger off, req/s c=32 (rounds)   {'':>8}  {max(offs):>9}     ledger costs "
        f"{100 * led['median_throughput_cost']:.1f}% of throughput, "
        f"{100 * led['median_gateway_cpu_cost']:.1f}% of the gateway's CPU/req "
        f"(+{led['median_cpu_ms_per_request']:.4f} ms; medians of paired rounds)",
        f"ledger ingest process (other core) {'':>8}  {'':>9}     "
        f"{led['ingest_cpu_ms_per_request']:.4f} ms CPU/row, RSS {led['rss_mb_ingest']} MB",
    ]


def table(r: dict[str, Any]) -> str:
    """The results as a text table with ratios against the direct call."""
    lat, fe, led = r["latency_c1"], r["first_event_c1"], r["ledger"]
    lines = ["figure                          direct      netra     overhead (ledger on | off)"]
    for q in ("p50_ms", "p99_ms"):
        d, n, o = lat["direct"][q], lat["netra"][q], led["latency_c1_off"][q]
        lines.append(f"latency c=1 {q:<19} {d:>8.3f}  {n:>9.3f}     +{n - d:.3f} | +{o - d:.3f} ms")
        d, n, o = fe["direct"][q], fe["netra"][q], led["first_event_c1_off"][q]
        lines.append(f"stream first event {q:<12} {d:>8.3f}  {n:>9.3f}     +{n - d:.3f} | +{o - d:.3f} ms")
    for c, row in r["rps"].items():
        d, n = row["direct"]["rps"], row["netra"]["rps"]
        cpu = row["netra"]["cpu_ms_per_request"]
        lines.append(f"req/s c={c:<22} {d:>8}  {n:>9}     {n / d:.2f}x  (netra CPU {cpu} ms/req)")
    lines += _ledger_lines(led)
    bare = r["bare_proxy_c32"]
    off_cpu = sorted(b["cpu_ms_per_request"] for _, b in led["rounds"])[len(led["rounds"]) // 2]
    own = off_cpu - bare["cpu_ms_per_request"]
    lines.append(f"bare Starlette+aiohttp proxy c=32  {'':>8}  {bare['rps']:>9}     "
                 f"CPU {bare['cpu_ms_per_request']} ms/req; Netra's own work (ledger off) {own:.4f} ms/req")
    lines.append(f"RSS after the run (MB)            {'':>8}  {r['rss_mb']:>9}     ledger off: {led['rss_mb_off']}")
    return "\n".join(lines)


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    args = parser.parse_args()
    started = time.time()
    results = run(args.quick)
    results["seconds"] = round(time.time() - started, 1)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(table(results))


if __name__ == "__main__":
    main()
