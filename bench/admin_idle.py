"""What an idle admin app costs the gateway: throughput with and without `netra admin` running, in one run.

One gateway (ledger on) pinned to the first core; the fake provider, the load generator and the ledger's ingest
process on the last one; c=32 proxied chat calls, in alternating rounds: (a) direct to the fake, (b) the gateway
with no admin app running, (c) the gateway with the admin app running idle, (d) (b) again, the A/A floor. For
(c), `netra admin` is started on the same data dir and database, pinned to the gateway's core (where `netra run`
leaves it: its child inherits the gateway's affinity; the worst case), signed in once (login, then /api/me) so
its lifespan, signing key and connection pool are warm, then left alone; it is stopped after the side, so (b)
and (d) run without it. Reported: req/s per side, the ratios (c)/(b) and (d)/(b) (medians of the rounds' ratios,
with their range), the gateway's CPU per request, and the admin process's CPU seconds during the (c) sides.

    python -m bench.admin_idle [--quick] [--rounds 8] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench.loadgen import requests_for, throughput
from bench.procs import (
    NETRA,
    ROOT,
    NetraProc,
    cores,
    cpu_seconds,
    create_keys,
    free_port,
    netra_env,
    pin,
    pin_children,
    rss_mb,
    start_fake,
    start_netra,
)

TENANTS = 32
CONCURRENCY = 32
EMAIL = "bench-admin@example.com"
PASSWORD = "bench admin password, long enough"
UPSTREAM_KEY = "sk-fake-upstream-key"  # the key bench.procs.netra_env gives the gateway for the fake
SETTLE = 1.0  # seconds between the sign-in and the (c) side: the admin's start-up work is over
Row = dict[str, Any]


@dataclass
class AdminProc:
    """A `netra admin` process and where it listens."""

    proc: subprocess.Popen[bytes]
    port: int

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.proc.terminate()
        self.proc.wait(timeout=60)


def create_admin_user(env: dict[str, str]) -> None:
    """`netra users create --role admin`, the password on stdin, as an operator does."""
    subprocess.run([*NETRA, "users", "create", EMAIL, "--role", "admin"], cwd=ROOT, env=env,
                   input=PASSWORD + "\n", capture_output=True, text=True, check=True)


def start_admin(env: dict[str, str], cpu: int, log: Path) -> AdminProc:
    """`netra admin` pinned to `cpu`; waits for /health."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(["taskset", "-c", str(cpu), *NETRA, "admin", "--host", "127.0.0.1", "--port",
                                 str(port)], cwd=ROOT, env=env, stdout=out, stderr=out)
    for _ in range(600):
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return AdminProc(proc, port)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the admin app did not start; see " + str(log))


def sign_in(admin: AdminProc) -> None:
    """Log in once and read /api/me with the access token (an error if either is refused)."""
    base = f"http://127.0.0.1:{admin.port}"
    login = httpx.post(f"{base}/api/auth/login", json={"email": EMAIL, "password": PASSWORD}, timeout=30)
    login.raise_for_status()
    me = httpx.get(f"{base}/api/me", headers={"authorization": f"Bearer {login.json()['access_token']}"})
    me.raise_for_status()


@dataclass
class Bench:
    """The running processes, the requests, and where the admin app goes."""

    fake_port: int
    netra: NetraProc
    env: dict[str, str]
    admin_cpu: int
    log: Path
    keys: list[str]
    admin_cpu_s: list[float] = field(default_factory=list)
    admin_rss_mb: list[float] = field(default_factory=list)

    async def direct(self, seconds: float) -> Row:
        """(a): the load straight to the fake."""
        reqs = requests_for(self.fake_port, [UPSTREAM_KEY])
        return await throughput(self.fake_port, reqs, CONCURRENCY, seconds, None)

    async def gateway(self, seconds: float) -> Row:
        """(b), (d): the load through the gateway, with its CPU per request."""
        reqs = requests_for(self.netra.port, self.keys)
        return await throughput(self.netra.port, reqs, CONCURRENCY, seconds, self.netra.pid)

    async def with_admin(self, seconds: float) -> Row:
        """(c): the gateway side with a warm, idle admin app beside it; notes the admin's CPU seconds meanwhile."""
        admin = await asyncio.to_thread(start_admin, self.env, self.admin_cpu, self.log)
        try:
            await asyncio.to_thread(sign_in, admin)
            await asyncio.sleep(SETTLE)
            before = cpu_seconds(admin.proc.pid)
            row = await self.gateway(seconds)
            self.admin_cpu_s.append(round(cpu_seconds(admin.proc.pid) - before, 3))
            self.admin_rss_mb.append(round(rss_mb(admin.proc.pid), 1))
        finally:
            await asyncio.to_thread(admin.stop)
        return row


def ratio(per_round: list[float]) -> Row:
    """The median of the rounds' ratios, and their range."""
    return {"median": round(statistics.median(per_round), 3),
            "range": [round(min(per_round), 3), round(max(per_round), 3)]}


def side_summary(rows: list[Row]) -> Row:
    """One side's rounds: req/s each, the median, and the gateway's median CPU per request when measured."""
    out: Row = {"rps": [row["rps"] for row in rows], "rps_median": statistics.median(row["rps"] for row in rows)}
    if "cpu_ms_per_request" in rows[0]:
        out["cpu_ms_per_request_median"] = statistics.median(row["cpu_ms_per_request"] for row in rows)
    return out


def summary(sides: dict[str, list[Row]]) -> Row:
    """Per side, and the ratios (b)/(a), (c)/(b) and (d)/(b) of req/s and of the gateway's CPU per request."""
    out: Row = {name: side_summary(rows) for name, rows in sides.items()}
    direct = zip(sides["a_direct"], sides["b_gateway"], strict=True)
    out["b_per_a"] = ratio([b["rps"] / max(a["rps"], 1) for a, b in direct])
    for label, top in (("c_per_b", "c_admin_idle"), ("d_per_b_aa", "d_gateway_again")):
        pairs = list(zip(sides[top], sides["b_gateway"], strict=True))
        out[label] = ratio([t["rps"] / max(b["rps"], 1) for t, b in pairs])
        out[label]["cpu_per_request"] = ratio([t["cpu_ms_per_request"] / b["cpu_ms_per_request"] for t, b in pairs])
    return out


async def measure(bench: Bench, rounds: int, seconds: float) -> Row:
    """The four sides in alternating rounds, after a warm-up of each path."""
    await bench.direct(1.0)
    await bench.gateway(1.0)
    sides: dict[str, list[Row]] = {"a_direct": [], "b_gateway": [], "c_admin_idle": [], "d_gateway_again": []}
    for _ in range(rounds):
        sides["a_direct"].append(await bench.direct(seconds))
        sides["b_gateway"].append(await bench.gateway(seconds))
        sides["c_admin_idle"].append(await bench.with_admin(seconds))
        sides["d_gateway_again"].append(await bench.gateway(seconds))
    out = summary(sides)
    out["admin_cpu_seconds_per_c_side"] = bench.admin_cpu_s
    out["admin_cpu_seconds_total"] = round(sum(bench.admin_cpu_s), 3)
    out["admin_rss_mb"] = bench.admin_rss_mb
    return out


def run(rounds: int, seconds: float) -> Row:
    """Start the fake and the gateway, measure, stop everything."""
    cpus = cores()
    netra_cpu, other_cpu = cpus[0], cpus[-1]
    pin(other_cpu)
    fake, fake_port = start_fake(other_cpu)
    try:
        with tempfile.TemporaryDirectory(prefix="netra-admin-idle-") as tmp:
            return _with_gateway(Path(tmp), fake_port, (netra_cpu, other_cpu), rounds, seconds)
    finally:
        fake.terminate()
        fake.wait()


def _with_gateway(data: Path, fake_port: int, cpus: tuple[int, int], rounds: int, seconds: float) -> Row:
    netra_cpu, other_cpu = cpus
    env = netra_env(data, fake_port, ledger=True)
    keys = create_keys(data, TENANTS, tier="enterprise")
    create_admin_user(env)
    netra = start_netra(env, free_port(), netra_cpu, data / "netra.log")
    try:
        time.sleep(2.0)  # the ledger's ingest process has started: pin it beside the load generator
        pin_children(netra.pid, other_cpu)
        bench = Bench(fake_port, netra, env, netra_cpu, data / "admin.log", keys)
        return uvloop.run(measure(bench, rounds, seconds))
    finally:
        netra.stop()


def main() -> None:
    """Command line entry point: prints JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s sides, for a smoke test")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds (default 8)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per side per round (default 4)")
    args = parser.parse_args()
    rounds, seconds = (2, 2.0) if args.quick else (args.rounds, args.seconds)
    started = time.time()
    out: Row = {"load_average_start": [round(x, 2) for x in os.getloadavg()], "rounds": rounds,
                "seconds_per_side": seconds, "concurrency": CONCURRENCY}
    out.update(run(rounds, seconds))
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    out["seconds"] = round(time.time() - started, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
