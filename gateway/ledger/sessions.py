"""In the ledger process: one connection on its socket, from a gateway process or from a reader.

A connection whose peer is not of the ledger process's own uid is refused before anything is read. Its first
line says what it is: `{"follow": INSTANCE}` from a gateway process (follower.py: control lines in, reports out,
until it closes its end), or a query `{"sql": …, "parameters": {…}}` from a reader, answered with
`{"columns": […], "rows": […]}` or `{"error": {"message", "code"}}`, one reply line per query line.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Protocol

from core.clickhouse import ClickHouseStore
from core.ledger_socket import load_line, peer_allowed, peer_uid
from core.settings import Settings
from gateway.ledger.follower import Follower
from gateway.ledger.queries import error_line, parse_request

log = logging.getLogger("netra.ledger")
_INSTANCE = re.compile(r"[0-9a-f]{32}")
REQUEST_LIMIT = 1024 * 1024  # the longest request line (SQL and parameters) a reader may send


class Hub(Protocol):
    """What a connection needs from the ledger process."""

    settings: Settings
    own_uid: int
    stopping: bool

    async def opened(self) -> ClickHouseStore:
        """The store, once it is open."""

    async def join(self, follower: Follower) -> None:
        """Register a gateway's follower (waiting until an earlier one of the same spill has stopped)."""

    def leave(self, follower: Follower) -> None:
        """Forget a follower that has stopped."""

    def poke_scan(self) -> None:
        """Look for dead writers' spills now."""

    async def answer(self, sql: str, parameters: dict[str, Any]) -> bytes:
        """The reply line for one query."""


async def handle(hub: Hub, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one connection until either end closes it."""
    try:
        if not peer_allowed(peer_uid(writer.get_extra_info("socket")), hub.own_uid):
            log.warning("ledger socket: refused a connection from another user")
            writer.write(error_line("permission denied: the ledger answers its own user only", "forbidden"))
            return
        first = await _read_message(reader, writer)
        if first is None or hub.stopping:
            return
        if "follow" in first:
            await _follow(hub, first, reader, writer)
        else:
            await _queries(hub, first, reader, writer)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the peer went away
    finally:
        writer.close()


async def _read_message(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, Any] | None:
    """The next message; None at the end of input or after answering a malformed line with an error."""
    try:
        line = await reader.readline()
    except (ValueError, asyncio.LimitOverrunError):
        writer.write(error_line(f"a request line is at most {REQUEST_LIMIT} bytes", "request_too_large"))
        return None
    if not line:
        return None
    try:
        return load_line(line)
    except ValueError:
        writer.write(error_line("a request is one JSON object per line", "invalid_json"))
        return None


async def _queries(hub: Hub, first: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    message: dict[str, Any] | None = first
    while message is not None and not hub.stopping:
        try:
            sql, parameters = parse_request(message)
        except ValueError as exc:
            writer.write(error_line(str(exc), "invalid_request"))
        else:
            writer.write(await hub.answer(sql, parameters))
        await writer.drain()
        message = await _read_message(reader, writer)


async def _follow(hub: Hub, first: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    instance = first.get("follow")
    if not isinstance(instance, str) or not _INSTANCE.fullmatch(instance):
        writer.write(error_line("follow names a spill instance (32 hex digits)", "invalid_request"))
        return
    follower = Follower(hub.settings, instance, writer.write)
    await hub.join(follower)
    work = [asyncio.create_task(follower.run(hub.opened)), asyncio.create_task(follower.reporter.run()),
            asyncio.create_task(_control(hub, follower, reader))]
    try:
        done, _ = await asyncio.wait(work, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and (exc := task.exception()) is not None:
                log.error("ledger: following a gateway's spill failed", exc_info=exc)
    finally:
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)
        await follower.close()
        hub.leave(follower)


async def _control(hub: Hub, follower: Follower, reader: asyncio.StreamReader) -> None:
    """Apply the gateway's control lines until it closes its end."""
    while line := await _control_line(reader):
        try:
            message = load_line(line)
        except ValueError:
            log.warning("ledger: unreadable control line from a gateway: %r", line[:200])
            continue
        follower.control(message)
        if "hurry" in message:
            hub.poke_scan()  # a drain also waits for dead writers' spills


async def _control_line(reader: asyncio.StreamReader) -> bytes:
    """The next control line; empty when the gateway closed its end or went away."""
    try:
        return await reader.readline()
    except (ConnectionError, ValueError):  # gone, or a line past the limit (no gateway sends one)
        return b""
