"""Provider credentials (admin only): list providers, set or clear a key or a base URL, manage the SSRF allowlist.

A key is write-only: responses and audit entries carry its last four characters, never more. A base URL must pass
core/ssrf.py unless its host is allowlisted. Each change bumps the credential counter that gateways follow.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from admin.body import read_object, string_field
from admin.principal import client_address, principal_of
from admin.provider_views import announce, configured_providers, entry, provider_named, sealing_key
from admin.state import get_state
from core.credential_crypto import seal
from core.credentials import (
    CredentialError,
    allow_host,
    allowed_hosts,
    change_override,
    check_api_key,
    credentials_version,
    disallow_host,
    last_four,
    read_overrides,
)
from core.errors import InvalidParameter, NotFound
from core.ssrf import UnsafeURL, check_base_url, check_host, normalise_host


async def providers_list(request: Request) -> Response:
    """Every configured provider with its kind, base URL and key's last four characters."""
    providers = await configured_providers(get_state(request).settings)
    async with get_state(request).sessions() as session:
        overrides = (await read_overrides(session)).credentials
    data = [entry(provider, overrides.get(name)) for name, provider in providers.items()]
    return JSONResponse({"object": "list", "data": data})


async def _change(request: Request, action: str, changes: dict[str, str | None]) -> Response:
    """Apply a change to the named provider's override and answer with the provider as it now stands."""
    state = get_state(request)
    provider = provider_named(await configured_providers(state.settings), request.path_params["name"])
    async with state.sessions() as session:
        row = await change_override(session, provider.name, changes, action=action,
                                    actor=principal_of(request).email, address=client_address(request))
        version = await credentials_version(session)
    await announce(state.settings, version)
    return JSONResponse(entry(provider, row))


async def key_set(request: Request) -> Response:
    """Set or rotate a provider's key from {"api_key"}; it is stored sealed and never shown again."""
    state = get_state(request)
    provider = provider_named(await configured_providers(state.settings), request.path_params["name"])
    try:
        key = check_api_key(string_field(await read_object(request), "api_key"))
    except CredentialError as exc:
        raise InvalidParameter(str(exc), code="invalid_value", param="api_key") from None
    sealed = seal(await sealing_key(state.settings), provider.name, key)
    return await _change(request, "provider.api_key.set", {"api_key_sealed": sealed, "api_key_last4": last_four(key)})


async def key_clear(request: Request) -> Response:
    """Drop a provider's key override: the file's key is used again."""
    return await _change(request, "provider.api_key.clear", {"api_key_sealed": None, "api_key_last4": None})


async def base_url_set(request: Request) -> Response:
    """Set a provider's base URL from {"base_url"}, refused when it reaches an internal address (400)."""
    state = get_state(request)
    provider = provider_named(await configured_providers(state.settings), request.path_params["name"])
    url = string_field(await read_object(request), "base_url")
    async with state.sessions() as session:
        allowlist = (await read_overrides(session)).allowlist
    try:
        url = await check_base_url(url, allowlist)
    except UnsafeURL as exc:
        raise InvalidParameter(f"Refused: {exc}.", code="unsafe_base_url", param="base_url") from None
    if provider.kind == "anthropic" and url.endswith("/v1"):
        raise InvalidParameter("An anthropic base URL is the host only, without /v1.", code="invalid_value",
                               param="base_url")
    return await _change(request, "provider.base_url.set", {"base_url": url})


async def base_url_clear(request: Request) -> Response:
    """Drop a provider's base URL override: the file's (or the vendor's) is used again."""
    return await _change(request, "provider.base_url.clear", {"base_url": None})


async def allowlist_list(request: Request) -> Response:
    """The hosts allowlisted past the address checks."""
    async with get_state(request).sessions() as session:
        hosts = await allowed_hosts(session)
    return JSONResponse({"object": "list", "data": [host.public() for host in hosts]})


async def allowlist_add(request: Request) -> Response:
    """Allowlist a host from {"host"} (a hostname or an IP address, no port)."""
    state = get_state(request)
    try:
        host = check_host(string_field(await read_object(request), "host"))
    except UnsafeURL as exc:
        raise InvalidParameter(str(exc), code="invalid_value", param="host") from None
    async with state.sessions() as session:
        added = await allow_host(session, host, actor=principal_of(request).email, address=client_address(request))
        version = await credentials_version(session)
    await announce(state.settings, version)
    return JSONResponse(added.public(), status_code=201)


async def allowlist_remove(request: Request) -> Response:
    """Take a host off the allowlist; base URLs on it are refused again (gateways stop using them)."""
    state = get_state(request)
    host = normalise_host(request.path_params["host"])
    async with state.sessions() as session:
        if not await disallow_host(session, host, actor=principal_of(request).email, address=client_address(request)):
            raise NotFound("That host is not on the allowlist.", code="host_not_found", param="host")
        version = await credentials_version(session)
    await announce(state.settings, version)
    return Response(status_code=204)


ROUTES: list[BaseRoute] = [
    Route("/api/providers", providers_list, methods=["GET"]),
    Route("/api/providers/{name}/api_key", key_set, methods=["PUT"]),
    Route("/api/providers/{name}/api_key", key_clear, methods=["DELETE"]),
    Route("/api/providers/{name}/base_url", base_url_set, methods=["PUT"]),
    Route("/api/providers/{name}/base_url", base_url_clear, methods=["DELETE"]),
    Route("/api/provider-allowlist", allowlist_list, methods=["GET"]),
    Route("/api/provider-allowlist", allowlist_add, methods=["POST"]),
    Route("/api/provider-allowlist/{host}", allowlist_remove, methods=["DELETE"]),
]
# Keys and where calls go are an admin's business alone, reading included.
PERMISSIONS: dict[tuple[str, str], str] = {
    ("GET", "/api/providers"): "admin",
    ("PUT", "/api/providers/{name}/api_key"): "admin",
    ("DELETE", "/api/providers/{name}/api_key"): "admin",
    ("PUT", "/api/providers/{name}/base_url"): "admin",
    ("DELETE", "/api/providers/{name}/base_url"): "admin",
    ("GET", "/api/provider-allowlist"): "admin",
    ("POST", "/api/provider-allowlist"): "admin",
    ("DELETE", "/api/provider-allowlist/{host}"): "admin",
}
