"""Provider credentials (admin only): list providers, set or clear a key or a base URL, manage the SSRF allowlist.

The changes themselves are admin/services/credentials.py's (the dashboard's forms make the same). Each change bumps
the credential counter that gateways follow.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from admin.api_params import actor_of
from admin.body import read_object, string_field
from admin.principal import client_address, principal_of
from admin.provider_views import announce, configured_providers, entry
from admin.services import credentials
from admin.state import get_state
from core.credentials import allow_host, allowed_hosts, credentials_version, disallow_host, read_overrides
from core.errors import InvalidParameter, NotFound
from core.ssrf import UnsafeURL, check_host, normalise_host


async def providers_list(request: Request) -> Response:
    """Every configured provider with its kind, base URL and key's last four characters."""
    providers = await configured_providers(get_state(request).settings)
    async with get_state(request).sessions() as session:
        overrides = (await read_overrides(session)).credentials
    data = [entry(provider, overrides.get(name)) for name, provider in providers.items()]
    return JSONResponse({"object": "list", "data": data})


async def key_set(request: Request) -> Response:
    """Set or rotate a provider's key from {"api_key"}; it is stored sealed and never shown again."""
    key, name = string_field(await read_object(request), "api_key"), request.path_params["name"]
    return JSONResponse(await credentials.set_key(get_state(request), actor_of(request), name, key))


async def key_clear(request: Request) -> Response:
    """Drop a provider's key override: the file's key is used again."""
    return JSONResponse(await credentials.clear_key(get_state(request), actor_of(request), request.path_params["name"]))


async def base_url_set(request: Request) -> Response:
    """Set a provider's base URL from {"base_url"}, refused when it reaches an internal address (400)."""
    url = string_field(await read_object(request), "base_url")
    name = request.path_params["name"]
    return JSONResponse(await credentials.set_base_url(get_state(request), actor_of(request), name, url))


async def base_url_clear(request: Request) -> Response:
    """Drop a provider's base URL override: the file's (or the vendor's) is used again."""
    name = request.path_params["name"]
    return JSONResponse(await credentials.clear_base_url(get_state(request), actor_of(request), name))


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
