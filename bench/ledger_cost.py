"""The ledger's cost alone: c=32 rounds of a ledger-off gateway against variants, all in the same session.

Run with `python -m bench.ledger_cost [--pairs 24] [--variant NAME:KEY=VALUE,...]...`. Every round runs the
ledger-off baseline and each variant once, in an order that rotates from round to round; a variant's cost in
a round is 1 - its req/s / the baseline's in that round, and the figure is the median over rounds. Each variant
is a `netra gateway` on a data dir of its own with the given NETRA_ settings (the ledger on unless one says
otherwise); `root=PATH` runs it from another source tree (today's code checked out elsewhere, to compare
designs in one session) and `warmup=SECONDS` loads it for that long before the rounds (default 2). With no
`--variant` it compares the ledger on (defaults) and an A/A variant (the ledger off on both sides: the
session's noise floor). `NETRA_CLICKHOUSE_URL=http://127.0.0.1:1` pauses ingest (nothing answers there), to
measure the spill alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from bench.loadgen import requests_for, throughput
from bench.procs import (
    ROOT,
    NetraProc,
    children,
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

DEFAULT_VARIANTS = ["ledger:", "aa:NETRA_LEDGER_ENABLED=false"]
PAIRS = 24  # fewer are not enough on a shared host (bench/RESULTS.md, run F)
SECONDS = 4.0
INGEST_WAIT = 6.0  # after a ledger-on run: ingest inserts up to a flush interval (5 s) later; count that CPU too


@dataclass
class Variant:
    """A gateway to compare with the ledger-off baseline."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    root: Path = ROOT
    warmup: float = 2.0

    @property
    def ledger(self) -> bool:
        """Whether it records calls."""
        return self.env.get("NETRA_LEDGER_ENABLED", "true") != "false"

    @classmethod
    def parse(cls, text: str) -> Variant:
        """`NAME:KEY=VALUE,...` (`root` and `warmup` as described above, the rest are environment variables)."""
        name, _, spec = text.partition(":")
        pairs = dict(item.split("=", 1) for item in spec.split(",") if item)
        root = Path(pairs.pop("root")) if "root" in pairs else ROOT
        return cls(name, pairs, root, float(pairs.pop("warmup", "2.0")))


@dataclass
class Side:
    """A running gateway and what it measured, round by round."""

    variant: Variant
    proc: NetraProc
    runs: list[dict[str, Any]] = field(default_factory=list)
    rss_mb: tuple[float, float] = (0.0, 0.0)  # the gateway's and its ingest process's, after the rounds


def _ingest_cpu(pid: int) -> float:
    return sum(cpu_seconds(child) for child in children(pid))


async def run_side(side: Side, keys: list[str], seconds: float) -> None:
    """One c=32 run; gateway CPU per request, and the ingest process's CPU per row up to INGEST_WAIT later."""
    pid = side.proc.pid
    before, ingest_before = cpu_seconds(pid), _ingest_cpu(pid)
    row = await throughput(side.proc.port, requests_for(side.proc.port, keys), 32, seconds, None)
    requests = max(row["rps"] * seconds, 1)
    row["cpu_ms_per_request"] = (cpu_seconds(pid) - before) * 1000 / requests
    if side.variant.ledger:
        await asyncio.sleep(INGEST_WAIT)
        row["ingest_cpu_ms_per_request"] = (_ingest_cpu(pid) - ingest_before) * 1000 / requests
    side.runs.append(row)


async def rounds(sides: list[Side], keys: list[str], pairs: int, seconds: float, together: bool) -> None:
    """Warm every side up, then `pairs` rounds, each running every side once: one after another in a rotating
    order, or all at once (`together`: they share the gateways' core, so each instant's noise hits all alike)."""
    for side in sides:
        await throughput(side.proc.port, requests_for(side.proc.port, keys), 32, side.variant.warmup, None)
        await asyncio.sleep(INGEST_WAIT if side.variant.ledger else 0.0)
    for i in range(pairs):
        if together:
            await asyncio.gather(*(run_side(side, keys, seconds) for side in sides))
            continue
        shift = i % len(sides)
        for side in sides[shift:] + sides[:shift]:
            await run_side(side, keys, seconds)


def start_side(variant: Variant, data: Path, fake_port: int, cpu: int) -> Side:
    """A gateway for `variant` on its own data dir, sharing the keys' database."""
    env = netra_env(data, fake_port, variant.ledger)
    env["NETRA_DATABASE_URL"] = f"sqlite+aiosqlite:///{data / 'data' / 'netra.db'}"
    env["NETRA_DATA_DIR"] = str(data / f"data-{variant.name}")
    env.update(variant.env)
    return Side(variant, start_netra(env, free_port(), cpu, data / f"{variant.name}.log", variant.root))


def _note_memory(sides: list[Side]) -> None:
    for side in sides:
        side.rss_mb = (rss_mb(side.proc.pid), sum(rss_mb(child) for child in children(side.proc.pid)))


def measure(variants: list[Variant], pairs: int, seconds: float, together: bool = False) -> list[Side]:
    """The fake provider, the load generator and every ingest process on the last core; gateways on the first."""
    cpus = cores()
    pin(cpus[-1])
    fake, fake_port = start_fake(cpus[-1])
    sides: list[Side] = []
    try:
        with tempfile.TemporaryDirectory(prefix="netra-bench-") as tmp:
            data = Path(tmp)
            keys = create_keys(data, 64)
            try:
                for variant in [Variant("off", {"NETRA_LEDGER_ENABLED": "false"}), *variants]:
                    sides.append(start_side(variant, data, fake_port, cpus[0]))
                time.sleep(3.0)
                for side in sides:
                    pin_children(side.proc.pid, cpus[-1])
                uvloop.run(rounds(sides, keys, pairs, seconds, together))
                _note_memory(sides)
            finally:
                for side in sides:
                    side.proc.stop()
    finally:
        fake.terminate()
        fake.wait()
    return sides


def median(values: list[float]) -> float:
    """The middle value (the upper one of an even count)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def summary(base: Side, side: Side) -> dict[str, Any]:
    """A variant's medians over the rounds, each round against the baseline's run of the same round."""
    pairs = list(zip(side.runs, base.runs, strict=True))
    costs = sorted(1 - a["rps"] / b["rps"] for a, b in pairs)
    out = {
        "variant": side.variant.name, "settings": side.variant.env, "root": str(side.variant.root),
        "pairs": len(pairs), "median_rps": median([a["rps"] for a, _ in pairs]),
        "median_rps_off": median([b["rps"] for _, b in pairs]),
        "throughput_cost": median(costs),
        "cost_quartiles": [costs[len(costs) // 4], costs[(3 * len(costs)) // 4]],
        "rss_mb": [round(value, 1) for value in side.rss_mb],
        "gateway_cpu_cost": median([1 - b["cpu_ms_per_request"] / a["cpu_ms_per_request"] for a, b in pairs]),
    }
    if side.variant.ledger:
        out["ingest_cpu_ms_per_row"] = median([a["ingest_cpu_ms_per_request"] for a, _ in pairs])
        out["total_cpu_cost"] = median([1 - b["cpu_ms_per_request"] / (a["cpu_ms_per_request"]
                                        + a["ingest_cpu_ms_per_request"]) for a, b in pairs])
    return out


def report(rows: list[dict[str, Any]]) -> str:
    """One line per variant: throughput and CPU cost against the same rounds' baseline."""
    lines = [f"{rows[0]['pairs'] if rows else 0} rounds at c=32; medians against the ledger-off baseline:"]
    for row in rows:
        low, high = row["cost_quartiles"]
        ingest = row.get("ingest_cpu_ms_per_row")
        lines.append(
            f"  {row['variant']:<14} throughput cost {100 * row['throughput_cost']:5.1f}% "
            f"(quartiles {100 * low:.1f}..{100 * high:.1f}%), gateway CPU/req {100 * row['gateway_cpu_cost']:5.1f}%"
            f", {row['median_rps']:.0f} vs {row['median_rps_off']:.0f} req/s, RSS {row['rss_mb']} MB"
            + (f", ingest {ingest:.4f} ms CPU/row, with it {100 * row['total_cpu_cost']:.1f}%" if ingest else "")
        )
    return "\n".join(lines)


def main() -> None:
    """Parse, measure, print medians and write bench/out/ledger_cost.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--seconds", type=float, default=SECONDS, help="length of each c=32 run")
    parser.add_argument("--variant", action="append", help="NAME:KEY=VALUE,... (repeatable)")
    parser.add_argument("--together", action="store_true", help="run every side of a round at the same time")
    args = parser.parse_args()
    variants = [Variant.parse(text) for text in args.variant or DEFAULT_VARIANTS]
    sides = measure(variants, args.pairs, args.seconds, args.together)
    rows = [summary(sides[0], side) for side in sides[1:]]
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "ledger_cost.json").write_text(json.dumps({"summary": rows, "rounds": [s.runs for s in sides]}, indent=1))
    print(report(rows))


if __name__ == "__main__":
    main()
