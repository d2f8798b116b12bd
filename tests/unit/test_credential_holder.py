"""The gateway side of credential overrides, on real adapters and a migrated SQLite store: what gets applied,
what is refused, and what requests already holding the old headers keep."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import aiohttp
import pytest

from core.config import parse_config
from core.credential_crypto import credential_key, seal
from core.credentials import allow_host, change_override, last_four
from core.secret_key import load_secret
from core.settings import Settings
from gateway.credential_holder import CredentialHolder
from gateway.providers import build_providers
from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.guard import GuardedResolver, file_hosts
from gateway.providers.http import Timeouts
from gateway.providers.openai import AzureProvider, OpenAIProvider
from tests.unit.conftest import Database

CONFIG = """
providers:
  - {name: main, kind: openai, api_key: "sk-file-key-main-0001"}
  - {name: az, kind: azure, base_url: "https://res.openai.azure.com", api_key: "az-file-key-0002"}
  - {name: ant, kind: anthropic, api_key: "sk-ant-file-key-0003"}
"""
ROTATED = "sk-rotated-key-material-9999"


@dataclass
class Rig:
    """The holder and the adapters it keeps current."""

    holder: CredentialHolder
    main: OpenAIProvider
    az: AzureProvider
    ant: AnthropicProvider


@pytest.fixture
async def rig(settings: Settings, database: Database, http_session: aiohttp.ClientSession) -> Rig:
    config = parse_config(CONFIG, {})
    providers = build_providers(config, http_session, Timeouts(1, 1, 1, 1))
    guard = GuardedResolver(file_hosts(config))
    holder = CredentialHolder(database.sessions, providers, guard, http_session, partial(load_secret, settings))
    main, az, ant = providers["main"], providers["az"], providers["ant"]
    assert isinstance(main, OpenAIProvider) and isinstance(az, AzureProvider) and isinstance(ant, AnthropicProvider)
    return Rig(holder, main, az, ant)


async def override(database: Database, provider: str, **changes: str | None) -> None:
    async with database.sessions() as session:
        await change_override(session, provider, dict(changes), action="test", actor="test", address=None)


async def test_a_key_and_base_url_reach_each_kind_and_old_headers_stay_intact(
    settings: Settings, database: Database, rig: Rig
) -> None:
    await rig.holder.refresh()
    main, az, ant = rig.main, rig.az, rig.ant
    held = main.headers
    key = credential_key(load_secret(settings))
    for name in ("main", "az", "ant"):
        await override(database, name, api_key_sealed=seal(key, name, ROTATED), api_key_last4=last_four(ROTATED),
                       base_url="https://8.8.8.8")
    assert await rig.holder.refresh()
    assert main.headers["authorization"] == f"Bearer {ROTATED}" and main.base == "https://8.8.8.8"
    assert az.headers["api-key"] == ROTATED and az.base == "https://8.8.8.8/openai"
    assert ant.headers["x-api-key"] == ROTATED and ant.url == "https://8.8.8.8/v1/messages"
    assert held["authorization"] == "Bearer sk-file-key-main-0001"  # a request holding the old headers keeps them
    await override(database, "main", api_key_sealed=None, api_key_last4=None, base_url=None)
    await rig.holder.refresh()
    assert main.headers["authorization"] == "Bearer sk-file-key-main-0001"
    assert main.base == "https://api.openai.com/v1"


async def test_an_internal_ip_literal_waits_for_the_allowlist(
    database: Database, rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await override(database, "main", base_url="http://169.254.169.254/v1")
    with caplog.at_level(logging.ERROR, logger="netra.gateway.credentials"):
        await rig.holder.refresh()
    assert rig.main.base == "https://api.openai.com/v1"
    assert "metadata" in getattr(caplog.records[0], "reason", "")
    async with database.sessions() as session:
        await allow_host(session, "169.254.169.254", actor="test", address=None)
    await rig.holder.refresh()
    assert rig.main.base == "http://169.254.169.254/v1"


async def test_an_unreadable_store_keeps_the_credentials_in_use(database: Database, rig: Rig) -> None:
    await rig.holder.refresh()
    async with database.engine.begin() as connection:
        await connection.exec_driver_sql("DROP TABLE credential_revision")
    assert not await rig.holder.refresh()
    assert rig.main.headers["authorization"] == "Bearer sk-file-key-main-0001"
