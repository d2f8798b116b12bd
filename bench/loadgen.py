"""A lean HTTP/1.1 keep-alive load generator (asyncio protocols), so the client costs little CPU."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.procs import cpu_seconds


@dataclass
class LoadResult:
    """Latencies (seconds) of completed requests, statuses seen, and the wall time of the run."""

    latencies: list[float] = field(default_factory=list)
    first_events: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        """Requests completed."""
        return len(self.latencies)

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.count / self.elapsed if self.elapsed else 0.0


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, float | None]] | None = None
        self.first_event: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they have write() and close().
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.first_event is None and b"data:" in data:
            self.first_event = time.perf_counter()
        self.buffer += data
        done = _complete(self.buffer)
        if done is not None and self.waiter is not None and not self.waiter.done():
            status, end = done
            del self.buffer[:end]
            self.waiter.set_result((status, self.first_event))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    async def request(self, data: bytes) -> tuple[int, float | None]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.first_event = None
        self.transport.write(data)
        return await self.waiter


def _complete(buf: bytearray) -> tuple[int, int] | None:
    """(status, bytes consumed) once a whole response is in the buffer."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buf[:head_end]).lower()
    status = int(head[9:12])
    body_start = head_end + 4
    marker = head.find(b"content-length:")
    if marker >= 0:
        line_end = head.find(b"\r\n", marker)
        length = int(head[marker + 15 : line_end if line_end > 0 else len(head)])
        return (status, body_start + length) if len(buf) >= body_start + length else None
    end = buf.find(b"0\r\n\r\n", body_start)
    while end > 0 and buf[end - 2 : end] != b"\r\n":
        end = buf.find(b"0\r\n\r\n", end + 1)
    return (status, end + 5) if end > 0 else None


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A keep-alive POST, ready to write."""
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json",
             f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _worker(
    host: str, port: int, requests: list[bytes], first: int, step: int, until: float, limit: int, result: LoadResult
) -> None:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(_Connection, host, port)
    index = first
    try:
        while time.perf_counter() < until and result.count < limit:
            request = requests[index % len(requests)]
            index += step
            started = time.perf_counter()
            status, first_event = await conn.request(request)
            result.latencies.append(time.perf_counter() - started)
            if first_event is not None:
                result.first_events.append(first_event - started)
            result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        if conn.transport is not None:
            conn.transport.close()


async def run_load(
    host: str, port: int, requests: list[bytes], concurrency: int, seconds: float, limit: int = 10**9
) -> LoadResult:
    """Drive `concurrency` connections for `seconds` or `limit` requests, cycling through `requests`.

    Connection i sends requests i, i + concurrency, i + 2·concurrency, … so every request (every tenant key)
    gets an even share of the load, whatever the concurrency.
    """
    result = LoadResult()
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(
        _worker(host, port, requests, i, concurrency, until, limit, result) for i in range(concurrency)
    ))
    result.elapsed = time.perf_counter() - started
    return result


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}


def requests_for(port: int, keys: list[str], stream: bool = False) -> list[bytes]:
    """One request per key (a connection per tenant keeps every tenant under its hourly limit)."""
    body = orjson.dumps({**CHAT, "stream": True} if stream else CHAT)
    return [build_request("127.0.0.1", port, "/v1/chat/completions", body, {"authorization": f"Bearer {k}"})
            for k in keys]


def checked(result: LoadResult) -> LoadResult:
    """The result, or an error when any answer was not a 200 (a benchmark of errors measures nothing)."""
    bad = {status: n for status, n in result.statuses.items() if status != 200}
    if bad:
        raise RuntimeError(f"non-200 answers during the benchmark: {bad}")
    return result


async def throughput(port: int, reqs: list[bytes], conc: int, seconds: float, pid: int | None) -> dict[str, Any]:
    """Requests per second at a concurrency, and the server's CPU time per request when its pid is given."""
    before = cpu_seconds(pid) if pid else 0.0
    result = checked(await run_load("127.0.0.1", port, reqs, conc, seconds))
    row: dict[str, Any] = {"rps": round(result.rps), "statuses": result.statuses}
    if pid:
        row["cpu_ms_per_request"] = round((cpu_seconds(pid) - before) * 1000 / max(result.count, 1), 4)
    return row
