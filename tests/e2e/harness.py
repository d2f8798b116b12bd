"""Real processes for end-to-end tests: the fake provider and `netra` itself, on loopback ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.fake_upstream_wire import WIRES
from tests.unit.helpers import closed_port as free_port

ROOT = Path(__file__).resolve().parents[2]
NETRA = [sys.executable, "-m", "cli.main"]
FAKE_KEY = "sk-fake-upstream-key"


def start_fake(extra: list[str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """The fake provider in its own process; returns it and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_upstream", "--port", "0", *(extra or [])],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    return proc, line.removeprefix("listening on ")


# One OpenAI-style and one Anthropic model per wire layout of the fake provider (chosen by the upstream model name).
WIRE_MODELS = "".join(
    f"  - {{name: wire-{wire}, provider: fake, upstream: gpt-4o-mini-wire-{wire},"
    f" price: {{input: 0.15, output: 0.6}}}}\n"
    f"  - {{name: claude-wire-{wire}, provider: fakeant, upstream: claude-sonnet-4-5-wire-{wire},"
    f" price: {{input: 3, output: 15}}}}\n"
    for wire in WIRES
)


def config_yaml(fake_url: str) -> str:
    """A netra.yaml serving OpenAI-style and Anthropic models from the fake provider."""
    return f"""
providers:
  - {{name: fake, kind: openai, base_url: "{fake_url}/v1", api_key: "${{FAKE_OPENAI_KEY}}"}}
  - {{name: fakeant, kind: anthropic, base_url: "{fake_url}", api_key: "sk-ant-fake-key"}}
  - {{name: fakeazure, kind: azure, base_url: "{fake_url}", api_key: "${{FAKE_OPENAI_KEY}}"}}
models:
  - {{name: gpt-4o-mini, provider: fake}}
  - {{name: gpt-4o, provider: fake}}
  - {{name: text-embedding-3-small, provider: fake}}
  - {{name: claude-sonnet, provider: fakeant, upstream: claude-sonnet-4-5}}
  - {{name: azure-4o, provider: fakeazure, upstream: gpt-4o-deployment}}
  - {{name: broken-500, provider: fake, upstream: gpt-4o-mini-error-500}}
  - {{name: broken-400, provider: fake, upstream: gpt-4o-mini-error-400}}
  - {{name: midstream, provider: fake, upstream: gpt-4o-mini-midstream-fail}}
  - {{name: drip, provider: fake, upstream: gpt-4o-mini-drip-100}}
  - {{name: unpriced-model, provider: fake}}
  - {{name: cut-short, provider: fake, upstream: gpt-4o-mini-truncated, price: {{input: 0.15, output: 0.6}}}}
""" + WIRE_MODELS


@dataclass
class Netra:
    """A running `netra run` process and how to reach it."""

    data_dir: Path
    env: dict[str, str]
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        """The base URL the OpenAI SDK takes."""
        return f"http://127.0.0.1:{self.port}/v1"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a `netra` command against this instance's settings."""
        done = subprocess.run([*NETRA, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def start(self, command: str = "run", *extra: str) -> None:
        """Start the server and wait until it is ready (its ledger process has the store open, too)."""
        self.log = self.data_dir / f"netra-{self.port}.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*NETRA, command, "--port", str(self.port), *extra], cwd=ROOT, env=self.env, stdout=out, stderr=out,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("netra did not start:\n" + self.log.read_text())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send a signal and wait for the process to exit; returns its exit status."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        return code

    def shutdown(self) -> None:
        """Stop the server if it still runs: SIGTERM first (killing the supervisor of `--workers` outright would
        leave its workers running), SIGKILL when it does not exit in time."""
        if self.proc is None:
            return
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def keyed_netra(tmp: Path, fake_url: str) -> Iterator[Netra]:
    """A Netra instance, not started, with an enterprise tenant `acme` whose key is TEST_KEY in its env; shut
    down when resumed (a fixture's teardown)."""
    instance = make_netra(tmp, fake_url)
    instance.cli("tenants", "create", "acme", "--tier", "enterprise")
    instance.env["TEST_KEY"] = instance.cli("keys", "create", "--tenant", "acme").stdout.strip()
    yield instance
    instance.shutdown()


def make_netra(tmp: Path, fake_url: str, **env: str) -> Netra:
    """A Netra instance on its own data dir and port, configured for the fake provider."""
    config = tmp / "netra.yaml"
    config.write_text(config_yaml(fake_url))
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NETRA_") and k != "OPENAI_API_KEY"},
        "NETRA_DATA_DIR": str(tmp / "data"), "NETRA_CONFIG": str(config), "FAKE_OPENAI_KEY": FAKE_KEY,
        "NETRA_LEDGER_FLUSH_INTERVAL": "0.05", "NETRA_ADMIN_PORT": str(free_port()), **env,
    }
    return Netra(data_dir=tmp, env=full_env, port=free_port())
