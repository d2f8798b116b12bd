"""Response cache figures: hits per second on one core against proxied calls in the same run, and a coalescing burst.

Netra (ledger on, one process pinned to one core) serves a cache policy for every deterministic request. In one
run, at c=32: cache hits (one repeated request per tenant), proxied calls that no policy caches (temperature 0.7:
`bypass`), and misses that are stored (every request different). Then a burst: N identical requests at once for a
model the fake answers after 200 ms: how many provider calls, and the followers' latency. Last, the throughput cost
of 100 more active policies on proxied calls (alternate rounds, the engine's worst case: all checked before the one
that matches). With --redis the cache lives in Redis (NETRA_REDIS_URL), otherwise in the process. Prints JSON.

    python -m bench.cache_bench [--quick] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop

from bench.loadgen import CHAT, _Connection, build_request, percentile, throughput
from bench.procs import (
    NETRA,
    ROOT,
    NetraProc,
    cores,
    create_keys,
    free_port,
    pin,
    pin_children,
    start_fake,
    start_netra,
    swap_policies,
)
from core.settings import Settings

TENANTS = 32
UPSTREAM_DELAY_MS = 200
POLICY = "kind: cache\nname: bench\nttl: 1h\n"
CONFIG = """providers:
  - {{name: fake, kind: openai, base_url: 'http://127.0.0.1:{port}/v1', api_key: sk-fake-upstream-key}}
models:
  - {{name: gpt-4o-mini, provider: fake}}
  - {{name: slow, provider: fake, upstream: gpt-4o-mini-slow-{delay}, price: {{input: 0.15, output: 0.6}}}}
"""


def environment(data_dir: Path, fake_port: int, redis_url: str | None) -> dict[str, str]:
    """Netra's environment: the fake behind it, the ledger on, Redis when given."""
    config = data_dir / "netra.yaml"
    config.write_text(CONFIG.format(port=fake_port, delay=UPSTREAM_DELAY_MS))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
    env = {**clean, "NETRA_DATA_DIR": str(data_dir / "data"), "NETRA_CONFIG": str(config),
           "NETRA_POLICY_POLL_INTERVAL": "0.2"}
    return env | ({"NETRA_REDIS_URL": redis_url} if redis_url else {})


def activate_with_cli(data_dir: Path, env: dict[str, str]) -> None:
    """`netra policies add` and `activate`, as an operator does."""
    path = data_dir / "policy.yaml"
    path.write_text(POLICY)
    added = subprocess.run(
        [*NETRA, "policies", "add", str(path)], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    subprocess.run(
        [*NETRA, "policies", "activate", added.stdout.strip()], cwd=ROOT, env=env, capture_output=True, check=True
    )


def chat_requests(port: int, keys: list[str], bodies: list[dict[str, Any]]) -> list[bytes]:
    """One request per body, the keys taken in turn."""
    return [
        build_request("127.0.0.1", port, "/v1/chat/completions", orjson.dumps(body),
                      {"authorization": f"Bearer {keys[i % len(keys)]}"})
        for i, body in enumerate(bodies)
    ]


def fresh_bodies(count: int, temperature: float) -> list[dict[str, Any]]:
    """`count` different requests (a marker each), so none is a repeat of another."""
    return [{**CHAT, "temperature": temperature, "messages": [{"role": "user", "content": f"m {uuid.uuid4().hex}"}]}
            for _ in range(count)]


async def rates(netra: NetraProc, keys: list[str], seconds: float) -> dict[str, Any]:
    """Hits, proxied (bypass) and stored misses at c=32, in one run; the hits' entries stored first."""
    port = netra.port
    hits = chat_requests(port, keys, [{**CHAT, "temperature": 0}] * len(keys))
    proxied = chat_requests(port, keys, [{**CHAT, "temperature": 0.7}] * len(keys))
    misses = chat_requests(port, keys, fresh_bodies(200_000, 0))
    await throughput(port, hits, 32, 1.0, None)  # warm-up; stores each tenant's entry
    await throughput(port, proxied, 32, 1.0, None)
    out = {
        "hits_c32": await throughput(port, hits, 32, seconds, netra.pid),
        "proxied_c32": await throughput(port, proxied, 32, seconds, netra.pid),
        "stored_misses_c32": await throughput(port, misses, 32, seconds, netra.pid),
    }
    out["hits_per_proxied"] = round(out["hits_c32"]["rps"] / max(out["proxied_c32"]["rps"], 1), 2)
    return out


async def burst(netra: NetraProc, keys: list[str], fake_port: int, size: int) -> dict[str, Any]:
    """`size` identical requests sent at once on open connections (one tenant) for the slow model."""
    body = {**CHAT, "model": "slow", "temperature": 0, "messages": [{"role": "user", "content": uuid.uuid4().hex}]}
    (request,) = chat_requests(netra.port, keys[:1], [body])
    loop = asyncio.get_running_loop()
    conns = [(await loop.create_connection(_Connection, "127.0.0.1", netra.port))[1] for _ in range(size)]
    before = httpx.get(f"http://127.0.0.1:{fake_port}/_fake/stats").json()["requests"]

    async def one(conn: _Connection) -> float:
        started = time.perf_counter()
        status, _ = await conn.request(request)
        assert status == 200, status
        return time.perf_counter() - started

    try:
        lat = sorted(await asyncio.gather(*(one(conn) for conn in conns)))
    finally:
        for conn in conns:
            conn.transport.close()
    calls = httpx.get(f"http://127.0.0.1:{fake_port}/_fake/stats").json()["requests"] - before
    quantiles = {q: round(percentile(lat, v) * 1000, 1) for q, v in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}
    return {"requests": len(lat), "provider_calls": calls, "upstream_delay_ms": UPSTREAM_DELAY_MS,
            "latency_ms": quantiles}


async def set_policies(settings: Settings, count: int, retired: list[str]) -> list[str]:
    """Retire `retired`, then activate `count` cache policies of a higher priority for tenants that send nothing:
    every decision checks them all before the policy that matches (the engine's worst case)."""
    text = "".join(
        f"---\nkind: cache\nname: p{i}\npriority: 10\nmatch: {{tenants: [elsewhere{i}]}}\nttl: 1h\n"
        for i in range(count)
    )
    return await swap_policies(settings, retired, text)


async def policy_cost(netra: NetraProc, keys: list[str], data: Path, seconds: float, rounds: int) -> dict[str, Any]:
    """Proxied calls (the policy decision made, nothing cached) with 1 active policy, then 101, alternately."""
    settings = Settings(data_dir=data / "data", _env_file=None)  # type: ignore[call-arg]
    proxied = chat_requests(netra.port, keys, [{**CHAT, "temperature": 0.7}] * len(keys))
    sides: dict[str, list[dict[str, Any]]] = {"one": [], "hundred_more": []}
    extra: list[str] = []
    for _ in range(rounds):
        for side, count in (("one", 0), ("hundred_more", 100)):
            extra = await set_policies(settings, count, extra)
            await asyncio.sleep(1.0)  # the gateway's poll (0.2 s here) loads the new snapshot
            sides[side].append(await throughput(netra.port, proxied, 32, seconds, netra.pid))
    mean = {side: sum(r["rps"] for r in rows) / len(rows) for side, rows in sides.items()}
    cpu = {side: sum(r["cpu_ms_per_request"] for r in rows) / len(rows) for side, rows in sides.items()}
    return {
        "rps": {side: [r["rps"] for r in rows] for side, rows in sides.items()},
        "cpu_ms_per_request": {side: round(value, 4) for side, value in cpu.items()},
        "throughput_cost_pct": round((mean["one"] - mean["hundred_more"]) * 100 / mean["one"], 2),
    }


async def measure(netra: NetraProc, keys: list[str], data: Path, fake_port: int, quick: bool) -> dict[str, Any]:
    """Every figure, in one run against one Netra."""
    out = await rates(netra, keys, 2.0 if quick else 6.0)
    out["burst"] = await burst(netra, keys, fake_port, 100 if quick else 500)
    out["policies"] = await policy_cost(netra, keys, data, 2.0 if quick else 4.0, 2 if quick else 3)
    return out


def run(quick: bool, redis_url: str | None, log_to: str | None = None) -> dict[str, Any]:
    """Start the fake and Netra, measure, stop everything."""
    cpus = cores()
    netra_cpu, other_cpu = cpus[0], cpus[-1]
    pin(other_cpu)
    fake, fake_port = start_fake(other_cpu)
    try:
        with tempfile.TemporaryDirectory(prefix="netra-cache-bench-") as tmp:
            data = Path(tmp)
            env = environment(data, fake_port, redis_url)
            keys = create_keys(data, TENANTS, tier="enterprise")
            activate_with_cli(data, env)
            netra = start_netra(env, free_port(), netra_cpu, data / "netra.log")
            try:
                pin_children(netra.pid, other_cpu)  # the ledger's ingest process, beside the load generator
                out = uvloop.run(measure(netra, keys, data, fake_port, quick))
            finally:
                netra.stop()
                if log_to is not None:
                    shutil.copyfile(data / "netra.log", log_to)
    finally:
        fake.terminate()
        fake.wait()
    return {"backend": "redis" if redis_url else "memory", **out}


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--redis", default=None, help="a Redis URL: the cache in Redis instead of in the process")
    parser.add_argument("--log", default=None, help="copy Netra's log here when done")
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.redis, args.log), indent=2))


if __name__ == "__main__":
    main()
