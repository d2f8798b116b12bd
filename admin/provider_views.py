"""What the provider credentials API shows and needs: the configured providers with their effective key (last four
characters only) and base URL, the sealing key, and the change notice to gateways."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.config import ConfigError, ProviderConfig, read_config
from core.credential_crypto import credential_key
from core.credentials import CHANGES_CHANNEL, ProviderCredential, last_four
from core.errors import NetraError, NotFound
from core.secret_key import load_secret
from core.settings import Settings

log = logging.getLogger("netra.admin.providers")


async def configured_providers(settings: Settings) -> dict[str, ProviderConfig]:
    """The providers netra.yaml (or the environment's provider keys) declares, as the gateway reads them."""
    try:
        # The file and the environment as they are now: what a gateway started now would serve.
        config = await asyncio.to_thread(read_config, settings, dict(os.environ))
    except ConfigError as exc:
        raise NetraError(f"The gateway configuration cannot be read: {exc}", status=503,
                         code="config_unreadable") from exc
    return {provider.name: provider for provider in config.providers}


def provider_named(providers: dict[str, ProviderConfig], name: str) -> ProviderConfig:
    """The configured provider, or a 404 (overrides exist only for providers the file declares)."""
    provider = providers.get(name)
    if provider is None:
        raise NotFound("No provider of that name is configured.", code="provider_not_found", param="name")
    return provider


def _key_of(provider: ProviderConfig, row: ProviderCredential | None) -> tuple[str, str | None]:
    if row is not None and row.api_key_last4 is not None:
        return "override", row.api_key_last4
    if provider.api_key is not None:
        return "file", last_four(provider.api_key.get_secret_value())
    return "none", None


def _base_url_of(provider: ProviderConfig, row: ProviderCredential | None) -> tuple[str, str]:
    if row is not None and row.base_url is not None:
        return "override", row.base_url
    return ("file" if provider.base_url else "default"), provider.resolved_base_url


def entry(provider: ProviderConfig, row: ProviderCredential | None) -> dict[str, Any]:
    """A provider as the API shows it: never a key, only its last four characters."""
    key_source, last4 = _key_of(provider, row)
    url_source, base_url = _base_url_of(provider, row)
    return {
        "name": provider.name, "kind": provider.kind, "base_url": base_url, "base_url_source": url_source,
        "api_key_last4": last4, "api_key_source": key_source,
        "updated_at": row.updated_at.isoformat() if row is not None else None,
        "updated_by": row.updated_by if row is not None else None,
    }


async def sealing_key(settings: Settings) -> bytes:
    """The key provider credentials are sealed with (the gateway derives the same one from the same secret)."""
    return credential_key(await asyncio.to_thread(load_secret, settings))


async def announce(settings: Settings, version: int) -> None:
    """Tell running gateways over Redis, when configured (they also poll the counter, so a failure only delays)."""
    if not settings.redis_url:
        return
    client = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.publish(CHANGES_CHANNEL, str(version))
    except (RedisError, OSError) as exc:
        log.warning("credential change not announced on Redis; gateways poll for it",
                    extra={"error": type(exc).__name__})
    finally:
        await client.aclose()
