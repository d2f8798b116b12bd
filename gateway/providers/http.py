"""Shared HTTP plumbing of adapters: the pooled aiohttp session and timed upstream requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver

from core.errors import NetraError
from core.settings import Settings
from gateway.providers.base import error_from_status, map_errors

ErrorMapper = Callable[[int, bytes, Any], NetraError]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Upstream timeouts in seconds: connect, first byte, idle between chunks, total."""

    connect: float
    first_byte: float
    idle: float
    total: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Timeouts:
        """The configured timeouts."""
        return cls(
            connect=settings.upstream_connect_timeout, first_byte=settings.upstream_first_byte_timeout,
            idle=settings.upstream_idle_timeout, total=settings.upstream_total_timeout,
        )


def create_session(settings: Settings, resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """The one upstream client session: pooled keep-alive connections, no cookies, raw bodies, names via `resolver`."""
    connector = aiohttp.TCPConnector(
        limit=settings.upstream_max_connections, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60,
        resolver=resolver,
    )
    return aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True,
        timeout=aiohttp.ClientTimeout(total=None, connect=settings.upstream_connect_timeout),
        skip_auto_headers=("User-Agent",),
    )


class UpstreamHTTP:
    """Sends one request to a provider and waits for its status line, within the configured timeouts."""

    def __init__(
        self, session: aiohttp.ClientSession, timeouts: Timeouts, provider: str,
        errors: ErrorMapper = error_from_status,
    ) -> None:
        self.session = session
        self.timeouts = timeouts
        self.provider = provider
        self.errors = errors
        t = timeouts
        # aiohttp enforces these itself (no per-request timer of ours): a complete answer must start within
        # the first-byte timeout; a stream may pause at most the idle timeout between chunks.
        self.json_timeout = aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.first_byte)
        self.stream_timeout = aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.idle)

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, stream: bool) -> aiohttp.ClientResponse:
        """POST and return the response once its headers arrived; non-2xx statuses raise our error."""
        # Redirects are not followed: a provider's base URL passed the SSRF checks, where it redirects to did not.
        with map_errors(self.provider):
            if stream:
                async with asyncio.timeout(self.timeouts.first_byte):
                    response = await self.session.post(url, data=body, headers=headers, timeout=self.stream_timeout,
                                                       allow_redirects=False)
            else:
                response = await self.session.post(url, data=body, headers=headers, timeout=self.json_timeout,
                                                   allow_redirects=False)
            if response.status >= 400:
                data = await response.read()
                response.release()
                raise self.errors(response.status, data, response.headers)
        return response

    async def read_all(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body of a non-streaming answer."""
        with map_errors(self.provider):
            try:
                return await response.read()
            finally:
                response.release()

    async def read_chunk(self, response: aiohttp.ClientResponse) -> bytes:
        """The next bytes of a streaming answer (b"" at the end), within the idle timeout."""
        with map_errors(self.provider):
            return await response.content.readany()
