"""The processes a benchmark runs: the fake provider and Netra, each pinned to its own core."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.db import create_engine, create_sessionmaker
from core.migrate import upgrade_relational
from core.settings import Settings
from core.tenants import create_key, create_tenant
from policies.loader import load_policies
from policies.store import activate_policy, add_policies, retire_policy

ROOT = Path(__file__).resolve().parents[1]
NETRA = [sys.executable, "-m", "cli.main"]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cores() -> list[int]:
    """CPUs this process may use."""
    return sorted(os.sched_getaffinity(0))


def pin(cpu: int) -> None:
    """Pin the calling process to one CPU."""
    os.sched_setaffinity(0, {cpu})


def children(pid: int) -> list[int]:
    """The child processes of `pid` (the ledger's ingest process, for Netra)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def pin_children(pid: int, cpu: int) -> None:
    """Pin every thread of every child of `pid` to one CPU (threads started later inherit it)."""
    for child in children(pid):
        for task in Path(f"/proc/{child}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), {cpu})
            except ProcessLookupError:
                continue


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_fake(cpu: int) -> tuple[subprocess.Popen[str], int]:
    """The fake provider, not recording requests, pinned to `cpu`."""
    proc = subprocess.Popen(
        ["taskset", "-c", str(cpu), sys.executable, "-m", "tests.fake_upstream", "--port", "0", "--no-record"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    return proc, int(line.rsplit(":", 1)[1])


@dataclass
class NetraProc:
    """A `netra gateway` process on its own data dir."""

    proc: subprocess.Popen[bytes]
    port: int
    pid: int

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.proc.terminate()
        self.proc.wait(timeout=120)


def netra_env(data_dir: Path, fake_port: int, ledger: bool) -> dict[str, str]:
    """Environment for a benchmark Netra: config pointing at the fake, logs to a file."""
    config = data_dir / "netra.yaml"
    config.write_text(
        "providers:\n"
        f"  - {{name: fake, kind: openai, base_url: 'http://127.0.0.1:{fake_port}/v1',"
        " api_key: sk-fake-upstream-key}\n"
        "models:\n  - {name: gpt-4o-mini, provider: fake}\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
    return {**clean, "NETRA_DATA_DIR": str(data_dir / "data"), "NETRA_CONFIG": str(config),
            "NETRA_LEDGER_ENABLED": "true" if ledger else "false"}


def create_keys(data_dir: Path, count: int, tier: str = "mid") -> list[str]:
    """`count` tenants on a tier (mid: 10 000 requests/hour each), one key each."""
    settings = Settings(data_dir=data_dir / "data")
    upgrade_relational(settings)

    async def make() -> list[str]:
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        keys = []
        async with sessions() as session:
            for i in range(count):
                await create_tenant(session, f"bench{i}", tier)
                keys.append((await create_key(session, f"bench{i}", [], None))[1])
        await engine.dispose()
        return keys

    return asyncio.run(make())


async def swap_policies(settings: Settings, retired: list[str], text: str) -> list[str]:
    """Retire `retired`, then add and activate the policies of the YAML `text` (none when empty); their ids."""
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            for pid in retired:
                await retire_policy(session, pid, "human:bench")
            added = await add_policies(session, load_policies(text, "bench.yaml"), "human:bench") if text else []
            for pid in added:
                await activate_policy(session, pid, "human:bench")
    finally:
        await engine.dispose()
    return added


def start_netra(env: dict[str, str], port: int, cpu: int, log: Path, root: Path = ROOT) -> NetraProc:
    """`netra gateway` from the source tree `root`, pinned to `cpu`; waits for /health."""
    with log.open("ab") as out:
        proc = subprocess.Popen(["taskset", "-c", str(cpu), *NETRA, "gateway", "--port", str(port)],
                                cwd=root, env=env, stdout=out, stderr=out)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return NetraProc(proc, port, proc.pid)
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("netra did not start; see " + str(log))
