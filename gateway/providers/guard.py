"""The SSRF check at connect time: the upstream session resolves every hostname through this resolver, which
refuses a name that resolves to an internal address unless netra.yaml names that host or an admin allowlisted it.

Checking the addresses a connection will actually use (aiohttp connects to what the resolver returned) is what
defeats DNS rebinding: a name that resolved to a public address when an admin set it and resolves to 127.0.0.1 or
169.254.169.254 later is refused then. IP literals never reach a resolver; core/ssrf.py's literal check covers them
when the gateway applies a base URL.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from core.config import GatewayConfig
from core.ssrf import address_refusal, normalise_host

log = logging.getLogger("netra.gateway.ssrf")


class RefusedAddress(OSError):
    """A hostname that resolves to an address the gateway must not call."""


def file_hosts(config: GatewayConfig) -> frozenset[str]:
    """The hosts netra.yaml (or the default config) points providers at: trusted, whatever they resolve to."""
    return frozenset(normalise_host(urlsplit(p.resolved_base_url).hostname or "") for p in config.providers)


class GuardedResolver(AbstractResolver):
    """Resolves as aiohttp would, then refuses internal addresses for hosts that are not trusted."""

    def __init__(self, trusted: Iterable[str], inner: AbstractResolver | None = None) -> None:
        self._inner = inner if inner is not None else DefaultResolver()
        self._file_hosts = frozenset(normalise_host(h) for h in trusted)
        self._allowlist: frozenset[str] = frozenset()

    def allow(self, hosts: Iterable[str]) -> None:
        """The admins' allowlist as of now (trusted in addition to the file's hosts)."""
        self._allowlist = frozenset(normalise_host(h) for h in hosts)

    def trusts(self, host: str) -> bool:
        """Whether a host skips the address checks."""
        host = normalise_host(host)
        return host in self._file_hosts or host in self._allowlist

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The host's addresses, or RefusedAddress when any of them is internal and the host is not trusted."""
        results = await self._inner.resolve(host, port, family)
        if self.trusts(host):
            return results
        for result in results:
            why = address_refusal(ipaddress.ip_address(result["host"]))
            if why is not None:
                log.warning("upstream connection refused: internal address", extra={"host": host, "reason": why})
                raise RefusedAddress(f"{host} resolves to {why}")
        return results

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()
