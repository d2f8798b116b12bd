"""Whether a provider base URL an admin sets may be called: no loopback, link-local, private or other internal
address, unless an admin allowlisted the host.

A hostname is resolved and every address it resolves to must be public. That answer can change later (DNS
rebinding: a name that resolved to a public address when it was set may resolve to 169.254.169.254 at call time), so
the gateway checks again when it connects: its upstream HTTP session resolves names through
gateway/providers/guard.py, which applies these same rules to the addresses each connection will use. IP literals
need no resolution and are checked when the gateway applies the URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Collection
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[list[str]]]
MAX_URL = 2048
MAX_HOST = 253
_HOSTNAME = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# Checked in order; the first that matches names the refusal.
_RANGES: tuple[tuple[str, Callable[[IPAddress], bool]], ...] = (
    ("a cloud metadata address", lambda ip: ip in _METADATA),
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("carrier-grade NAT (100.64.0.0/10)", lambda ip: isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT),
    ("reserved", lambda ip: ip.is_reserved),
    ("private", lambda ip: ip.is_private),
    ("not a public address", lambda ip: not ip.is_global),
)


class UnsafeURL(ValueError):
    """A base URL that is malformed or points at an address the gateway must not call."""


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped ::ffff:a.b.c.d, NAT64, 6to4), or None."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def address_refusal(ip: IPAddress) -> str | None:
    """Why calling this address is refused (the range it is in), or None for a public address."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        why = address_refusal(inner)
        return None if why is None else f"{why} (inside {ip})"
    return next((f"{ip} is {name}" for name, test in _RANGES if test(ip)), None)


def normalise_host(host: str) -> str:
    """A host as the allowlist stores and compares it: lower case, no brackets, no trailing dot."""
    return host.strip().lower().strip("[]").rstrip(".")


def parse_ip(host: str) -> IPAddress | None:
    """The host as an IP address when it is a literal one."""
    try:
        return ipaddress.ip_address(normalise_host(host))
    except ValueError:
        return None


def check_host(host: str) -> str:
    """A host fit for the allowlist (a hostname or an IP literal), normalised; UnsafeURL otherwise."""
    normal = normalise_host(host)
    if parse_ip(normal) is None and (len(normal) > MAX_HOST or not _HOSTNAME.match(normal)):
        raise UnsafeURL("not a hostname or IP address")
    return normal


def split_base_url(url: str) -> tuple[str, str, int]:
    """The URL without a trailing slash, its host and its port; UnsafeURL when it is not a plain http(s) URL."""
    if len(url) > MAX_URL or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeURL(f"a base URL is at most {MAX_URL} characters without spaces or control characters")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL("a base URL starts with https:// (or http://)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURL("a base URL carries no user or password (set the key instead)")
    if parts.query or parts.fragment:
        raise UnsafeURL("a base URL has no query or fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeURL("the base URL's port is not a number from 1 to 65535") from exc
    host = normalise_host(parts.hostname or "")
    if not host:
        raise UnsafeURL("the base URL names no host")
    return url.strip().rstrip("/"), host, port


def literal_refusal(host: str, allowlist: Collection[str]) -> str | None:
    """Why an IP-literal host is refused, without resolving anything (None for names and allowed hosts)."""
    ip = parse_ip(host)
    if ip is None or normalise_host(host) in allowlist:
        return None
    return address_refusal(ip)


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for the host."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_base_url(url: str, allowlist: Collection[str], resolve: Resolve = system_resolve) -> str:
    """The URL, normalised, if it may be called: allowlisted, or every address of its host public; else UnsafeURL."""
    normal, host, port = split_base_url(url)
    if host in allowlist:
        return normal
    try:
        addresses = [host] if parse_ip(host) is not None else await resolve(host, port)
    except OSError as exc:
        raise UnsafeURL(f"the host {host} does not resolve") from exc
    for address in addresses:
        why = address_refusal(ipaddress.ip_address(address))
        if why is not None:
            raise UnsafeURL(f"the host {host} resolves to {why}; an admin may allowlist the host")
    if not addresses:
        raise UnsafeURL(f"the host {host} does not resolve")
    return normal
