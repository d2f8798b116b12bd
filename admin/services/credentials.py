"""Provider credentials as admins change them (the API and the dashboard's forms alike): a key or a base URL set
or cleared per configured provider, each change audited, counted and announced to gateways.

A key is write-only: what comes back carries its last four characters, never more. A base URL must pass
core/ssrf.py unless its host is allowlisted.
"""

from __future__ import annotations

from typing import Any

from admin.provider_views import announce, configured_providers, entry, provider_named, sealing_key
from admin.services.changes import Actor
from admin.state import AdminState
from core.config import ProviderConfig
from core.credential_crypto import seal
from core.credentials import (
    CredentialError,
    change_override,
    check_api_key,
    credentials_version,
    last_four,
    read_overrides,
)
from core.errors import InvalidParameter
from core.ssrf import UnsafeURL, check_base_url


async def _provider(state: AdminState, name: str) -> ProviderConfig:
    return provider_named(await configured_providers(state.settings), name)


async def _change(
    state: AdminState, actor: Actor, provider: ProviderConfig, action: str, changes: dict[str, str | None]
) -> dict[str, Any]:
    """Apply a change to the provider's override; the provider as it now stands."""
    async with state.sessions() as session:
        row = await change_override(session, provider.name, changes, action=action, actor=actor.email,
                                    address=actor.address)
        version = await credentials_version(session)
    await announce(state.settings, version)
    return entry(provider, row)


async def set_key(state: AdminState, actor: Actor, name: str, key: str) -> dict[str, Any]:
    """Set or rotate a provider's key; stored sealed and never shown again."""
    provider = await _provider(state, name)
    try:
        key = check_api_key(key)
    except CredentialError as exc:
        raise InvalidParameter(str(exc), code="invalid_value", param="api_key") from None
    sealed = seal(await sealing_key(state.settings), provider.name, key)
    changes: dict[str, str | None] = {"api_key_sealed": sealed, "api_key_last4": last_four(key)}
    return await _change(state, actor, provider, "provider.api_key.set", changes)


async def clear_key(state: AdminState, actor: Actor, name: str) -> dict[str, Any]:
    """Drop a provider's key override: the file's key is used again."""
    changes: dict[str, str | None] = {"api_key_sealed": None, "api_key_last4": None}
    return await _change(state, actor, await _provider(state, name), "provider.api_key.clear", changes)


async def set_base_url(state: AdminState, actor: Actor, name: str, url: str) -> dict[str, Any]:
    """Set a provider's base URL, refused (400) when it reaches an internal address."""
    provider = await _provider(state, name)
    async with state.sessions() as session:
        allowlist = (await read_overrides(session)).allowlist
    try:
        url = await check_base_url(url, allowlist)
    except UnsafeURL as exc:
        raise InvalidParameter(f"Refused: {exc}.", code="unsafe_base_url", param="base_url") from None
    if provider.kind == "anthropic" and url.endswith("/v1"):
        raise InvalidParameter("An anthropic base URL is the host only, without /v1.", code="invalid_value",
                               param="base_url")
    return await _change(state, actor, provider, "provider.base_url.set", {"base_url": url})


async def clear_base_url(state: AdminState, actor: Actor, name: str) -> dict[str, Any]:
    """Drop a provider's base URL override: the file's (or the vendor's) is used again."""
    return await _change(state, actor, await _provider(state, name), "provider.base_url.clear", {"base_url": None})
