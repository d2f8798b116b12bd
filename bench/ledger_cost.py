"""The ledger's cost alone: paired c=32 rounds, ledger on versus off, with optional settings for the ledger-on side.

Run with `python -m bench.ledger_cost [--pairs 16] [NETRA_X=value ...]`; for instance
`NETRA_CLICKHOUSE_URL=http://127.0.0.1:1` pauses the ingest (nothing answers there) to measure the spill alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.procs import cores, create_keys, netra_env, pin, pin_children, start_fake, start_netra
from bench.run import median, paired_round, requests_for, throughput
from tests.e2e.harness import free_port


async def rounds(on: Any, off: Any, keys: list[str], pairs: int) -> list[Any]:
    """Warm both up, then `pairs` alternating rounds."""
    for proc in (on, off):
        await throughput(proc.port, requests_for(proc.port, keys), 32, 2.0, None)
    return [await paired_round(on, off, keys, 4.0, i % 2 == 0) for i in range(pairs)]


def measure(extra: dict[str, str], pairs: int) -> list[Any]:
    """Start the fake, a ledger-on and a ledger-off Netra on core 0 (ingest beside the fake), run the rounds."""
    cpus = cores()
    pin(cpus[-1])
    fake, fake_port = start_fake(cpus[-1])
    try:
        with tempfile.TemporaryDirectory(prefix="netra-bench-") as tmp:
            data = Path(tmp)
            keys = create_keys(data, 64)
            on = start_netra({**netra_env(data, fake_port, True), **extra}, free_port(), cpus[0], data / "on.log")
            off = start_netra(netra_env(data, fake_port, False), free_port(), cpus[0], data / "off.log")
            try:
                time.sleep(3.0)
                pin_children(on.pid, cpus[-1])
                return uvloop.run(rounds(on, off, keys, pairs))
            finally:
                on.stop()
                off.stop()
    finally:
        fake.terminate()
        fake.wait()


def main() -> None:
    """Parse, measure, print medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("settings", nargs="*", help="NETRA_X=value for the ledger-on gateway")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.settings)
    pairs = measure(extra, args.pairs)
    print(f"settings {extra or 'defaults'}; {len(pairs)} paired rounds at c=32, medians:")
    print(f"  throughput cost        {100 * median([1 - a['rps'] / b['rps'] for a, b in pairs]):.1f}%")
    cost = median([1 - b["cpu_ms_per_request"] / a["cpu_ms_per_request"] for a, b in pairs])
    print(f"  gateway CPU/req cost   {100 * cost:.1f}%")
    print(f"  ingest CPU per row     {median([a['ingest_cpu_ms_per_request'] for a, _ in pairs]):.4f} ms")


if __name__ == "__main__":
    main()
