"""Base URLs an admin sets: internal addresses refused in every form, allowlisted hosts accepted."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from core.settings import Settings
from core.ssrf import UnsafeURL, check_base_url, check_host, literal_refusal
from gateway.providers.guard import GuardedResolver, RefusedAddress
from gateway.providers.http import create_session
from tests.fake_upstream import FakeUpstream

REFUSED = [
    ("http://127.0.0.1:8000/v1", "loopback"),
    ("http://127.8.9.10/v1", "loopback"),
    ("http://[::1]:8000/v1", "loopback"),
    ("http://169.254.169.254/latest", "metadata"),
    ("http://[fd00:ec2::254]/latest", "metadata"),
    ("http://169.254.1.1/v1", "link-local"),
    ("http://[fe80::1]/v1", "link-local"),
    ("http://10.1.2.3/v1", "private"),
    ("http://172.16.0.1/v1", "private"),
    ("http://172.31.255.254/v1", "private"),
    ("http://192.168.1.1/v1", "private"),
    ("http://[fc00::1]/v1", "private"),
    ("http://100.64.0.1/v1", "carrier-grade NAT"),
    ("http://100.127.255.254/v1", "carrier-grade NAT"),
    ("http://224.0.0.1/v1", "multicast"),
    ("http://[ff02::1]/v1", "multicast"),
    ("http://0.0.0.0:8000/v1", "unspecified"),
    ("http://[::]:8000/v1", "unspecified"),
    ("http://[::ffff:127.0.0.1]/v1", "loopback"),
    ("http://[::ffff:169.254.169.254]/v1", "metadata"),
    ("http://[::ffff:10.0.0.1]/v1", "private"),
    ("http://[64:ff9b::a9fe:a9fe]/v1", "metadata"),  # NAT64 of 169.254.169.254
    ("http://[2002:7f00:1::]/v1", "loopback"),  # 6to4 of 127.0.0.1
    ("http://240.0.0.1/v1", "reserved"),
    ("http://198.18.0.1/v1", "private"),
    ("http://localhost:8000/v1", "loopback"),  # a name: resolved, then checked
    ("http://127.1/v1", "loopback"),  # a short numeric form the resolver expands
    ("http://2130706433/v1", "loopback"),  # 127.0.0.1 as one number
]


async def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} should not need resolving")


@pytest.mark.parametrize("url, why", REFUSED)
async def test_internal_addresses_are_refused(url: str, why: str) -> None:
    with pytest.raises(UnsafeURL, match=why):
        await check_base_url(url, frozenset())


@pytest.mark.parametrize("url", ["https://8.8.8.8/v1", "https://[2606:4700:4700::1111]/v1", "http://1.1.1.1:8080"])
async def test_public_addresses_are_accepted(url: str) -> None:
    assert await check_base_url(url + "/", frozenset(), no_dns) == url


async def test_a_name_is_checked_on_every_address_it_resolves_to() -> None:
    async def split(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "10.0.0.7"]

    with pytest.raises(UnsafeURL, match=r"10\.0\.0\.7 is private"):
        await check_base_url("https://api.example.com/v1", frozenset(), split)


async def test_an_allowlisted_host_is_accepted_without_checks() -> None:
    assert await check_base_url("http://127.0.0.1:9000/v1", frozenset({"127.0.0.1"}), no_dns) \
        == "http://127.0.0.1:9000/v1"
    assert await check_base_url("http://vllm.internal:8000/v1", frozenset({"vllm.internal"}), no_dns)
    with pytest.raises(UnsafeURL):  # the allowlist names hosts exactly: another loopback address is not on it
        await check_base_url("http://127.0.0.2:9000/v1", frozenset({"127.0.0.1"}), no_dns)


@pytest.mark.parametrize("url", [
    "ftp://example.com/v1", "file:///etc/passwd", "https://user:pw@example.com/v1", "https://example.com/v1?x=1",
    "https://example.com/v1#frag", "https://example.com:99999/v1", "https:///v1", "https://exa mple.com/v1",
    "https://example.com/v1\r\nx-injected: 1",
])
async def test_malformed_base_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        await check_base_url(url, frozenset(), no_dns)


def test_hosts_for_the_allowlist_are_normalised_and_checked() -> None:
    assert check_host(" VLLM.Internal. ") == "vllm.internal"
    assert check_host("[::1]") == "::1"
    for bad in ("http://x", "a/b", "-x.com", "x..com", "", "a b"):
        with pytest.raises(UnsafeURL):
            check_host(bad)


def test_literal_refusal_needs_no_resolution() -> None:
    assert literal_refusal("169.254.169.254", frozenset()) is not None
    assert literal_refusal("169.254.169.254", frozenset({"169.254.169.254"})) is None
    assert literal_refusal("rebind.example", frozenset()) is None  # names are the connect-time guard's


class Rebinding(AbstractResolver):
    """DNS a hostile domain controls: public at first, then the loopback address where the fake listens."""

    def __init__(self) -> None:
        self.answers = ["93.184.216.34"]

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
                for a in self.answers]

    async def close(self) -> None:
        return None


async def test_the_guard_refuses_a_name_that_rebinds_to_loopback_at_connect_time(
    settings: Settings, fake_upstream: FakeUpstream
) -> None:
    dns = Rebinding()
    guard = GuardedResolver(trusted=[], inner=dns)
    session = create_session(settings, guard)
    try:
        assert await check_base_url("http://rebind.example/v1", frozenset(), lambda h, p: guard_answers(dns))
        dns.answers = ["127.0.0.1"]  # the name now points at the gateway's own host
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await session.get(f"http://rebind.example:{fake_upstream.port}/v1/models")
        assert isinstance(refused.value.os_error, RefusedAddress) and "loopback" in str(refused.value.os_error)
        assert fake_upstream.requests == []
        guard.allow(["rebind.example"])  # an admin allowlists it: connections go through
        async with session.get(f"http://rebind.example:{fake_upstream.port}/v1/models") as response:
            assert response.status == 401  # the fake answered (this request carries no key)
    finally:
        await session.close()


async def guard_answers(dns: Rebinding) -> list[str]:
    return list(dns.answers)


async def test_names_in_netra_yaml_are_trusted(settings: Settings, fake_upstream: FakeUpstream) -> None:
    dns = Rebinding()
    dns.answers = ["127.0.0.1"]
    session = create_session(settings, GuardedResolver(trusted=["Internal.Example"], inner=dns))
    try:
        async with session.get(f"http://internal.example:{fake_upstream.port}/v1/models") as response:
            assert response.status == 401
    finally:
        await session.close()
