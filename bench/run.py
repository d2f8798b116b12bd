"""`make bench`: Netra against a direct call to the fake provider, measured in the same run.

Netra runs as one process pinned to one core; the fake provider and this load generator share the other.
The ledger's cost is measured by `bench.ledger_cost` itself (fresh gateways, paired rounds against a ledger-off
baseline, with an A/A variant for the session's noise floor), so `make bench` and `python -m bench.ledger_cost`
report the same figure measured the same way. Prints a table and writes bench/out/results.json.
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

import uvloop

from bench import ledger_cost
from bench.loadgen import checked, percentile, requests_for, run_load, throughput
from bench.procs import (
    ROOT,
    NetraProc,
    cores,
    create_keys,
    free_port,
    netra_env,
    pin,
    pin_children,
    rss_mb,
    start_fake,
    start_netra,
)

UPSTREAM_KEY = "sk-fake-upstream-key"


def ms(value: float) -> float:
    """Seconds to milliseconds, rounded for the table."""
    return round(value * 1000, 3)


async def latency(port: int, reqs: list[bytes], count: int) -> dict[str, float]:
    """p50/p99 at concurrency 1."""
    result = checked(await run_load("127.0.0.1", port, reqs, 1, 120, limit=count))
    return {"p50_ms": ms(percentile(result.latencies, 0.5)), "p99_ms": ms(percentile(result.latencies, 0.99))}


async def first_event(port: int, reqs: list[bytes], count: int) -> dict[str, float]:
    """Streaming: time to the first `data:` event, p50/p99 at concurrency 1."""
    result = checked(await run_load("127.0.0.1", port, reqs, 1, 120, limit=count))
    return {"p50_ms": ms(percentile(result.first_events, 0.5)), "p99_ms": ms(percentile(result.first_events, 0.99))}


async def measure(fake_port: int, netra: NetraProc, off: NetraProc, keys: list[str], quick: bool) -> dict[str, Any]:
    """Every gateway figure, direct and through Netra (ledger on; latencies with it off too), in one run."""
    n, secs = (300, 2.0) if quick else (3000, 6.0)
    direct = requests_for(fake_port, [UPSTREAM_KEY] * len(keys))
    reqs = requests_for(netra.port, keys)
    await throughput(netra.port, reqs, 32, 2.0, None)  # warm-up
    await throughput(off.port, requests_for(off.port, keys), 32, 2.0, None)
    out: dict[str, Any] = {"latency_c1": {"direct": await latency(fake_port, direct, n),
                                          "netra": await latency(netra.port, reqs, n),
                                          "off": await latency(off.port, requests_for(off.port, keys), n)}}
    out["rps"] = {str(c): {"direct": await throughput(fake_port, direct, c, secs, None),
                           "netra": await throughput(netra.port, reqs, c, secs, netra.pid)} for c in (1, 8, 32, 64)}
    out["first_event_c1"] = {
        "direct": await first_event(fake_port, requests_for(fake_port, [UPSTREAM_KEY], True), n // 2),
        "netra": await first_event(netra.port, requests_for(netra.port, keys, True), n // 2),
        "off": await first_event(off.port, requests_for(off.port, keys, True), n // 2),
    }
    out["rss_mb"], out["rss_mb_off"] = round(rss_mb(netra.pid), 1), round(rss_mb(off.pid), 1)
    return out


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


def gateway_figures(quick: bool) -> dict[str, Any]:
    """Start the fake, a ledger-on and a ledger-off Netra; measure them and the bare proxy; stop everything."""
    cpus = cores()
    netra_cpu, other_cpu = cpus[0], cpus[-1]
    pin(other_cpu)
    fake, fake_port = start_fake(other_cpu)
    try:
        with tempfile.TemporaryDirectory(prefix="netra-bench-") as tmp:
            data = Path(tmp)
            keys = create_keys(data, 64)
            netra = start_netra(netra_env(data, fake_port, ledger=True), free_port(), netra_cpu, data / "on.log")
            off = start_netra(netra_env(data, fake_port, ledger=False), free_port(), netra_cpu, data / "off.log")
            try:
                time.sleep(3.0)
                pin_children(netra.pid, other_cpu)  # the ledger's ingest process, beside the load generator
                results = uvloop.run(measure(fake_port, netra, off, keys, quick))
            finally:
                netra.stop()
                off.stop()
        results["bare_proxy_c32"] = uvloop.run(bare_proxy(fake_port, netra_cpu, quick))
    finally:
        fake.terminate()
        fake.wait()
    return results


def run(quick: bool) -> dict[str, Any]:
    """The gateway figures, then the ledger's cost as `bench.ledger_cost` measures it."""
    results = gateway_figures(quick)
    variants = [ledger_cost.Variant.parse(text) for text in ledger_cost.DEFAULT_VARIANTS]
    sides = ledger_cost.measure(variants, 2 if quick else ledger_cost.PAIRS, ledger_cost.SECONDS)
    results["ledger"] = [ledger_cost.summary(sides[0], side) for side in sides[1:]]
    return results


def _latency_lines(r: dict[str, Any]) -> list[str]:
    lines = []
    for q in ("p50_ms", "p99_ms"):
        for label, key in (("latency c=1", "latency_c1"), ("stream first event", "first_event_c1")):
            d, n, o = (r[key][side][q] for side in ("direct", "netra", "off"))
            lines.append(f"{label} {q:<{30 - len(label)}} {d:>8.3f}  {n:>9.3f}     +{n - d:.3f} | +{o - d:.3f} ms")
    return lines


def table(r: dict[str, Any]) -> str:
    """The results as a text table with ratios against the direct call."""
    lines = ["figure                          direct      netra     overhead (ledger on | off)", *_latency_lines(r)]
    for c, row in r["rps"].items():
        d, n = row["direct"]["rps"], row["netra"]["rps"]
        cpu = row["netra"]["cpu_ms_per_request"]
        lines.append(f"req/s c={c:<22} {d:>8}  {n:>9}     {n / d:.2f}x  (netra CPU {cpu} ms/req)")
    bare = r["bare_proxy_c32"]
    bare_cpu = bare["cpu_ms_per_request"]
    lines.append(f"bare Starlette+aiohttp proxy c=32  {'':>8}  {bare['rps']:>9}     CPU {bare_cpu} ms/req")
    lines.append(f"RSS after the run (MB)            {'':>8}  {r['rss_mb']:>9}     ledger off: {r['rss_mb_off']}")
    lines.append("ledger cost (bench.ledger_cost, fresh gateways): " + ledger_cost.report(r["ledger"]))
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
