"""The batch clients' HTTP: one request at a time, JSON or JSONL answers, provider failures in our error tree."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import orjson

from core.errors import NetraError, UpstreamFailed
from gateway.providers.base import error_from_status, map_errors
from gateway.providers.http import Timeouts

ErrorMapper = Callable[[int, bytes, Any], NetraError]


class BatchHTTP:
    """Requests to a provider's files and batches endpoints on the lane's own session."""

    def __init__(
        self, session: aiohttp.ClientSession, timeouts: Timeouts, provider: str,
        errors: ErrorMapper = error_from_status,
    ) -> None:
        self.session = session
        self.provider = provider
        self.errors = errors
        # Uploads and result files can be large: the whole exchange may take the total timeout.
        self.timeout = aiohttp.ClientTimeout(
            total=timeouts.total, connect=timeouts.connect, sock_read=timeouts.first_byte
        )

    async def call(self, method: str, url: str, headers: dict[str, str], data: Any = None) -> bytes:
        """The body of a 2xx answer; any other status raises the provider's error, mapped."""
        with map_errors(self.provider):
            async with self.session.request(method, url, data=data, headers=headers, timeout=self.timeout) as response:
                body = await response.read()
                if response.status >= 400:
                    raise self.errors(response.status, body, response.headers)
                return body

    async def json(self, method: str, url: str, headers: dict[str, str], data: Any = None) -> dict[str, Any]:
        """A JSON object answer."""
        body = await self.call(method, url, headers, data)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamFailed(f"The provider {self.provider} sent an answer that is not JSON.") from None
        if not isinstance(parsed, dict):
            raise UpstreamFailed(f"The provider {self.provider} sent an unexpected answer.")
        return parsed


def jsonl_objects(body: bytes) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file (blank lines skipped; a malformed line is the provider's failure)."""
    for line in body.splitlines():
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise UpstreamFailed("The provider sent a result file with a malformed line.") from None
        if isinstance(item, dict):
            yield item


def obj(value: Any) -> dict[str, Any]:
    """The value if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def count(value: Any) -> int:
    """A non-negative integer count, 0 for anything else."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
