"""Routing decision cost: µs per decision, then throughput through Netra against a direct call, in one run.

1. Micro: ``decide()`` with 100 active policies (bench.policy_decide's), then ``plan_route`` for the route policy
   it found, or for none; the median and fastest of several rounds.
2. End to end at c=32, Netra (ledger on) pinned to one core, the fake provider and load generator on the other, in
   alternating rounds: (a) direct to the fake, (b) Netra with no policy, (c) Netra with an active route policy
   rewriting gpt-4o → gpt-4o-mini (added and activated in the store before (c), retired after it; each switch
   waits until the gateway serves accordingly), (d) (b) again, the A/A floor. Ratios: medians of the rounds'.
3. A failing primary (the fake answers its upstream name 500, switched out of process), with a fallback: calls
   that retry and fall back (a second gateway whose breaker never opens), and calls that go straight to the
   fallback (the first gateway, its breaker open), in rounds alternating with (b). Retries back off 0 s (the
   figure is Netra's work, not a sleep) under an unbounded retry budget, so every call makes every attempt.
Every side reports the provider calls per client request, per upstream model, from the fake's own counts.

    python -m bench.route_bench [--quick] [--rounds 10] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench import policy_decide
from bench.cache_bench import chat_requests
from bench.loadgen import CHAT, throughput
from bench.procs import NetraProc, cores, create_keys, free_port, pin, pin_children, start_fake, start_netra
from core.db import create_engine, create_sessionmaker
from core.settings import Settings
from gateway.routing import plan_route
from policies.engine import Snapshot, decide
from policies.features import Features
from policies.loader import load_policies
from policies.models import RoutePolicy
from policies.store import activate_policy, add_policies, retire_policy

TENANTS = 32
UPSTREAM_KEY = "sk-fake-upstream-key"
PRIMARY_UPSTREAM = "gpt-4o-primary"
ROUTE_POLICY = "kind: route\nname: bench mini\nmatch: {models: [gpt-4o]}\ntargets: [{model: gpt-4o-mini}]\n"
CONFIG = """providers:
  - {{name: fake, kind: openai, base_url: 'http://127.0.0.1:{port}/v1', api_key: {key}}}
models:
  - {{name: gpt-4o, provider: fake}}
  - {{name: gpt-4o-mini, provider: fake}}
  - {{name: primary, provider: fake, upstream: {primary}, fallbacks: [gpt-4o-mini], price: {{input: 2.5, output: 10}}}}
"""
# Both gateways: no sleep between attempts, a retry budget that never refuses, an open breaker stays open.
RESILIENCE = {"NETRA_RETRY_BASE_DELAY": "0", "NETRA_RETRY_BUDGET": "1000", "NETRA_BREAKER_OPEN_SECONDS": "3600"}
NEVER_OPENS = {"NETRA_BREAKER_FAILURES": str(10**9)}
Row = dict[str, Any]


def routing_micro(fallbacks: int = 1) -> dict[str, Any]:
    """µs per decide() with 100 policies, per decide + plan_route as the gateway does it, and plan_route alone."""
    rng = random.Random(9)
    snapshot = Snapshot.build(1, policy_decide.policies(rng))
    batch = [(f, uuid.uuid4().hex) for f in policy_decide.requests(rng)]
    models = policy_decide.MODELS
    fallbacks_of = {m: tuple(models[(i + 1 + k) % len(models)] for k in range(fallbacks)) for i, m in enumerate(models)}
    routed = [(f, rid) for f, rid in batch if decide(f, snapshot).route is not None]
    unrouted = [(f, rid) for f, rid in batch if decide(f, snapshot).route is None]
    found = [(f, decide(f, snapshot).route, rid) for f, rid in routed]
    figures = {
        "decide": _timed(lambda: [decide(f, snapshot) for f, _ in batch], len(batch)),
        "decide_then_plan_route_all": _timed(lambda: _decide_and_plan(batch, snapshot, fallbacks_of), len(batch)),
        "decide_then_plan_route_policy_found": _timed(lambda: _decide_and_plan(routed, snapshot, fallbacks_of),
                                                      len(routed)),
        "decide_then_plan_route_none_found": _timed(lambda: _decide_and_plan(unrouted, snapshot, fallbacks_of),
                                                    len(unrouted)),
        "plan_route_alone_with_policy": _timed(lambda: _plans(found, fallbacks_of), len(found)),
        "plan_route_alone_without_policy": _timed(lambda: _plans([(f, None, r) for f, r in batch], fallbacks_of),
                                                  len(batch)),
    }
    return {"requests": len(batch), "route_matched_share": round(len(routed) / len(batch), 3),
            "fallbacks_per_model": fallbacks, "us_per_call_median_fastest": figures}


def _timed(run: Callable[[], object], calls: int) -> list[float]:
    median, fastest = policy_decide.timed(run, calls)
    return [round(median, 3), round(fastest, 3)]


def _decide_and_plan(batch: list[tuple[Features, str]], snapshot: Snapshot, fb: dict[str, tuple[str, ...]]) -> None:
    for features, rid in batch:
        plan_route(features.model, decide(features, snapshot).route, rid, fb)


def _plans(calls: Sequence[tuple[Features, RoutePolicy | None, str]], fb: dict[str, tuple[str, ...]]) -> None:
    for features, policy, rid in calls:
        plan_route(features.model, policy, rid, fb)


def environment(data: Path, name: str, fake_port: int, extra: dict[str, str]) -> dict[str, str]:
    """A gateway's environment: the fake behind it, the ledger on, its own data dir, `create_keys`'s database."""
    config = data / f"{name}.yaml"
    config.write_text(CONFIG.format(port=fake_port, key=UPSTREAM_KEY, primary=PRIMARY_UPSTREAM))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
    database = f"sqlite+aiosqlite:///{data / 'data' / 'netra.db'}"
    return {**clean, "NETRA_DATA_DIR": str(data / name), "NETRA_CONFIG": str(config), "NETRA_DATABASE_URL": database,
            "NETRA_POLICY_POLL_INTERVAL": "0.2", "NETRA_LEDGER_ENABLED": "true", **RESILIENCE, **extra}


class Bench:
    """The running fake and gateways, the keys, and the request sets of every side."""

    def __init__(self, fake_port: int, main: NetraProc, retrying: NetraProc, keys: list[str], settings: Settings):
        self.fake_port, self.main, self.retrying, self.keys, self.settings = fake_port, main, retrying, keys, settings
        self.active: list[str] = []
        gpt4o, primary = {**CHAT, "model": "gpt-4o"}, {**CHAT, "model": "primary"}
        self.direct = chat_requests(fake_port, [UPSTREAM_KEY], [gpt4o])
        self.gpt4o = chat_requests(main.port, keys, [gpt4o] * len(keys))
        self.fallback_open = chat_requests(main.port, keys, [primary] * len(keys))
        self.fallback_retry = chat_requests(retrying.port, keys, [primary] * len(keys))

    async def calls(self) -> dict[str, int]:
        """Requests the fake has received, per upstream model."""
        async with httpx.AsyncClient() as client:
            counts: dict[str, int] = (await client.get(f"http://127.0.0.1:{self.fake_port}/_fake/calls")).json()
            return counts

    async def side(self, port: int, reqs: list[bytes], pid: int | None, seconds: float) -> Row:
        """Requests/s at c=32 (and CPU per request of `pid`), with the provider calls each client request made."""
        before = await self.calls()
        row = await throughput(port, reqs, 32, seconds, pid)
        after, served = await self.calls(), sum(row["statuses"].values())
        row["provider_calls_per_request"] = {
            model: round((n - before.get(model, 0)) / served, 3) for model, n in after.items() if n != before.get(model)
        }
        return row

    async def route_policy(self, on: bool) -> None:
        """Retire the bench's route policy, or add and activate one; wait until the gateway serves accordingly."""
        engine = create_engine(self.settings)
        try:
            async with create_sessionmaker(engine)() as session:
                for pid in self.active:
                    await retire_policy(session, pid, "human:bench")
                self.active = await add_policies(session, load_policies(ROUTE_POLICY, "b.yaml"), "human:bench") \
                    if on else []
                for pid in self.active:
                    await activate_policy(session, pid, "human:bench")
        finally:
            await engine.dispose()
        await self.served_by("gpt-4o-mini" if on else "gpt-4o")

    async def served_by(self, model: str, attempts: int = 200) -> None:
        """Probe until gpt-4o requests are served by `model` (the gateway polls the store every 0.2 s)."""
        url = f"http://127.0.0.1:{self.main.port}/v1/chat/completions"
        headers = {"authorization": f"Bearer {self.keys[0]}"}
        async with httpx.AsyncClient() as client:
            for _ in range(attempts):
                response = await client.post(url, json={**CHAT, "model": "gpt-4o"}, headers=headers)
                if response.headers.get("x-netra-model") == model:
                    return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the gateway did not switch to {model} after the policy change")


def summary(sides: dict[str, list[Row]], ratios: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Per side: the rounds' requests/s and medians; per ratio: the median of the rounds' ratios, and their range
    (and the same for the gateway's CPU per request, when both sides are the gateway's)."""
    out: dict[str, Any] = {name: _side_summary(rows) for name, rows in sides.items()}
    for label, (top, bottom) in ratios.items():
        pairs = list(zip(sides[top], sides[bottom], strict=True))
        out[label] = _ratio([t["rps"] / max(b["rps"], 1) for t, b in pairs])
        if "cpu_ms_per_request" in sides[top][0] and "cpu_ms_per_request" in sides[bottom][0]:
            cpu = [t["cpu_ms_per_request"] / b["cpu_ms_per_request"] for t, b in pairs]
            out[label]["cpu_per_request"] = _ratio(cpu)
    return out


def _ratio(per_round: list[float]) -> Row:
    return {"median": round(statistics.median(per_round), 3),
            "range": [round(min(per_round), 3), round(max(per_round), 3)]}


def _side_summary(rows: list[Row]) -> Row:
    models = sorted({m for row in rows for m in row["provider_calls_per_request"]})
    calls = {m: statistics.median(row["provider_calls_per_request"].get(m, 0.0) for row in rows) for m in models}
    out: Row = {"rps": [row["rps"] for row in rows], "rps_median": statistics.median(row["rps"] for row in rows),
                "provider_calls_per_request": calls}
    if "cpu_ms_per_request" in rows[0]:
        out["cpu_ms_per_request_median"] = statistics.median(row["cpu_ms_per_request"] for row in rows)
    return out


async def routing_rounds(b: Bench, rounds: int, seconds: float) -> dict[str, Any]:
    """(a) direct, (b) Netra, (c) Netra with the route policy, (d) Netra again, in alternating rounds."""
    main = b.main
    await throughput(b.fake_port, b.direct, 32, 1.0, None)  # warm-up
    await throughput(main.port, b.gpt4o, 32, 1.0, None)
    sides: dict[str, list[Row]] = {"a_direct": [], "b_netra": [], "c_route_policy": [], "d_netra_again": []}
    for _ in range(rounds):
        sides["a_direct"].append(await b.side(b.fake_port, b.direct, None, seconds))
        sides["b_netra"].append(await b.side(main.port, b.gpt4o, main.pid, seconds))
        await b.route_policy(on=True)
        sides["c_route_policy"].append(await b.side(main.port, b.gpt4o, main.pid, seconds))
        await b.route_policy(on=False)
        sides["d_netra_again"].append(await b.side(main.port, b.gpt4o, main.pid, seconds))
    ratios = {"b_per_a": ("b_netra", "a_direct"), "c_per_b": ("c_route_policy", "b_netra"),
              "d_per_b_aa": ("d_netra_again", "b_netra")}
    return summary(sides, ratios)


async def fallback_rounds(b: Bench, rounds: int, seconds: float) -> dict[str, Any]:
    """With the primary failing: (b) Netra, (e) retries then the fallback, (f) breaker open: the fallback at once."""
    async with httpx.AsyncClient() as client:
        switched = await client.post(f"http://127.0.0.1:{b.fake_port}/_fake/failures",
                                     json={"model": PRIMARY_UPSTREAM, "mode": 500})
        switched.raise_for_status()
    await throughput(b.main.port, b.fallback_open, 32, 1.0, None)  # warm-up; opens the main gateway's breaker
    await throughput(b.retrying.port, b.fallback_retry, 32, 1.0, None)
    sides: dict[str, list[Row]] = {"b_netra": [], "e_retry_then_fallback": [], "f_breaker_open_fallback": []}
    for _ in range(rounds):
        sides["b_netra"].append(await b.side(b.main.port, b.gpt4o, b.main.pid, seconds))
        sides["e_retry_then_fallback"].append(
            await b.side(b.retrying.port, b.fallback_retry, b.retrying.pid, seconds))
        sides["f_breaker_open_fallback"].append(await b.side(b.main.port, b.fallback_open, b.main.pid, seconds))
    ratios = {"e_per_b": ("e_retry_then_fallback", "b_netra"), "f_per_b": ("f_breaker_open_fallback", "b_netra")}
    return summary(sides, ratios)


async def measure(b: Bench, rounds: int, seconds: float) -> dict[str, Any]:
    """Both end-to-end sections against the running processes."""
    return {"rounds": rounds, "seconds_per_side": seconds,
            "routing_c32": await routing_rounds(b, rounds, seconds),
            "fallback_c32": await fallback_rounds(b, rounds, seconds)}


def end_to_end(rounds: int, seconds: float) -> dict[str, Any]:
    """Start the fake (other core) and both gateways (first core), measure, stop everything."""
    cpus = cores()
    netra_cpu, other_cpu = cpus[0], cpus[-1]
    pin(other_cpu)
    fake, fake_port = start_fake(other_cpu)
    try:
        with tempfile.TemporaryDirectory(prefix="netra-route-bench-") as tmp:
            return _with_gateways(Path(tmp), fake_port, (netra_cpu, other_cpu), rounds, seconds)
    finally:
        fake.terminate()
        fake.wait()


def _with_gateways(data: Path, fake_port: int, cpus: tuple[int, int], rounds: int, seconds: float) -> Row:
    netra_cpu, other_cpu = cpus
    keys = create_keys(data, TENANTS, tier="enterprise")
    main = start_netra(environment(data, "data", fake_port, {}), free_port(), netra_cpu, data / "main.log")
    try:
        retrying = start_netra(environment(data, "retrying", fake_port, NEVER_OPENS), free_port(), netra_cpu,
                               data / "retrying.log")
        try:
            time.sleep(2.0)  # the ledgers' ingest processes have started: pin them beside the load generator
            for gateway in (main, retrying):
                pin_children(gateway.pid, other_cpu)
            settings = Settings(data_dir=data / "data", _env_file=None)  # type: ignore[call-arg]
            return uvloop.run(measure(Bench(fake_port, main, retrying, keys, settings), rounds, seconds))
        finally:
            retrying.stop()
    finally:
        main.stop()


def main() -> None:
    """Command line entry point: prints JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s sides, for a smoke test")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds per section (default 10)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per side per round (default 4)")
    args = parser.parse_args()
    rounds, seconds = (2, 2.0) if args.quick else (args.rounds, args.seconds)
    started = time.time()
    out: dict[str, Any] = {"load_average_start": [round(x, 2) for x in os.getloadavg()]}
    out["micro"] = routing_micro()
    out.update(end_to_end(rounds, seconds))
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    out["seconds"] = round(time.time() - started, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
