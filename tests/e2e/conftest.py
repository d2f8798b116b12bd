"""End-to-end fixtures: a fake provider process and a `netra run` process per module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

from tests.e2e.harness import Netra, make_netra, start_fake


@dataclass
class Deployment:
    """A running Netra with a tenant per tier and a key for each."""

    netra: Netra
    fake_url: str
    keys: dict[str, str]
    clients: list[openai.OpenAI] = field(default_factory=list)

    def client(self, key: str = "acme") -> openai.OpenAI:
        """An SDK client for a named key (or a raw key), closed when the module's tests are done."""
        made = openai.OpenAI(base_url=self.netra.url, api_key=self.keys.get(key, key), max_retries=0)
        self.clients.append(made)
        return made


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
    deployed = Deployment(netra, fake_url, keys)
    yield deployed
    for made in deployed.clients:
        made.close()
    netra.shutdown()
