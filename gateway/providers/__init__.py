"""Provider adapters, chosen by kind from one table."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from core.config import GatewayConfig, ProviderConfig
from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.base import Provider
from gateway.providers.http import Timeouts
from gateway.providers.openai import AzureProvider, OpenAIProvider

ProviderFactory = Callable[[ProviderConfig, aiohttp.ClientSession, Timeouts], Provider]

PROVIDER_KINDS: dict[str, ProviderFactory] = {
    "openai": OpenAIProvider,
    "azure": AzureProvider,
    "anthropic": AnthropicProvider,
}


def build_providers(config: GatewayConfig, session: aiohttp.ClientSession, timeouts: Timeouts) -> dict[str, Provider]:
    """One adapter per configured provider, keyed by its name."""
    return {p.name: PROVIDER_KINDS[p.kind](p, session, timeouts) for p in config.providers}
