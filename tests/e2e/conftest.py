"""End-to-end fixtures: a fake provider process and a `netra run` process per module."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import Netra, make_netra, start_fake


@dataclass
class Deployment:
    """A running Netra with a tenant per tier and a key for each."""

    netra: Netra
    fake_url: str
    keys: dict[str, str]


@pytest.fixture(scope="session")
def fake_url() -> Iterator[str]:
    """The fake provider, shared by every end-to-end test."""
    proc, url = start_fake()
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, fake_url: str) -> Iterator[Deployment]:
    """Netra started the way the README says, with tenants and keys made by the CLI."""
    netra = make_netra(Path(tmp_path_factory.mktemp("netra")), fake_url)
    netra.cli("migrate")
    keys: dict[str, str] = {}
    for name, tier in (("acme", "enterprise"), ("tiny", "free")):
        netra.cli("tenants", "create", name, "--tier", tier)
        keys[name] = netra.cli("keys", "create", "--tenant", name).stdout.strip()
    keys["mini-only"] = netra.cli("keys", "create", "--tenant", "acme", "--models", "gpt-4o-mini").stdout.strip()
    netra.start()
    yield Deployment(netra, fake_url, keys)
    if netra.proc is not None:
        try:
            netra.stop()
        except subprocess.TimeoutExpired:
            netra.proc.kill()
