"""The ledger process: the one owner of a data directory's store, ingesting every gateway process's spill.

Started by a gateway process (remote.py) as `python -m gateway.ledger.ledgerd`, settings on its first input line.
It takes `<data_dir>/ledger.lock` (core/ledger_socket.py) or exits at once when another holds it, so exactly one
runs per data directory. It listens on `<data_dir>/ledger.sock`, opens the store, and then:
- follows the spill of each gateway process connected to it (follower.py, sessions.py);
- replays the spill of every writer whose process is gone, now and every second (replay.py);
- answers read-only queries (queries.py).
It stops when its last gateway process has gone (or none came within a minute of its start), closing the
store before it exits; the lock is released by the exit itself, once the engine is gone. Killed, it loses
nothing: the gateways reconnect, start another, and ingest resumes from the ack logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import Any

import orjson

from core.backoff import Backoff
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore
from core.ledger_socket import ShortPath, socket_path, take_lock
from core.logs import configure_logging
from core.settings import Settings
from gateway.ledger.follower import Follower, Ledgerbook
from gateway.ledger.queries import QueryRunner, error_line
from gateway.ledger.replay import recover_instances
from gateway.ledger.sessions import REQUEST_LIMIT, handle

log = logging.getLogger("netra.ledger")
RESCAN = 1.0  # how often dead writers' spills are looked for
IDLE_EXIT = 60.0  # a ledger process no gateway connected to within this long stops
STORE_WAIT = 30.0  # how long a query waits for the store to open
_OPEN_FIRST, _OPEN_MAX = 0.5, 10.0


class LedgerProcess:
    """The socket server, the store, the followers, the recovery pass and the queries of one data directory."""

    def __init__(self, settings: Settings, own_uid: int | None = None) -> None:
        self.settings = settings
        self.own_uid = os.getuid() if own_uid is None else own_uid
        self.stopping = False
        self.followers: list[Follower] = []  # in connection order: the first gets the recovery reports
        self._followed: dict[str, asyncio.Event] = {}  # instance -> set once its follower has stopped
        self._recovery = Ledgerbook(settings, None, progress=False)
        self._queries = QueryRunner(settings)
        self._store: ClickHouseStore | None = None
        self._store_open = asyncio.Event()
        self._scan_wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._passes = 0
        self._handlers: set[asyncio.Task[None]] = set()

    async def opened(self) -> ClickHouseStore:
        """The store, once it is open."""
        await self._store_open.wait()
        assert self._store is not None
        return self._store

    async def join(self, follower: Follower) -> None:
        """Register a gateway's follower, once an earlier follower of the same spill has stopped."""
        while (gone := self._followed.get(follower.instance)) is not None:
            await gone.wait()
        self._followed[follower.instance] = asyncio.Event()
        follower.need_pass = self._passes + 1  # a pass that starts from now on sees every writer dead by now
        self.followers.append(follower)
        if len(self.followers) == 1:
            self._recovery.reporter.rebase(follower.reporter.send)
        self.poke_scan()

    def leave(self, follower: Follower) -> None:
        """Forget a stopped follower; the last one leaving stops the process."""
        first = bool(self.followers) and self.followers[0] is follower
        self.followers.remove(follower)
        self._followed.pop(follower.instance).set()
        if first:
            self._recovery.reporter.rebase(self.followers[0].reporter.send if self.followers else None)
        if not self.followers:
            log.info("ledger process: no gateway process left; stopping")
            self.request_stop()

    def poke_scan(self) -> None:
        """Look for dead writers' spills now."""
        self._scan_wake.set()

    def request_stop(self) -> None:
        """Stop serving, close the store, exit."""
        self._stop.set()

    async def answer(self, sql: str, parameters: dict[str, Any]) -> bytes:
        """The reply line for one query (it waits a while for a store still opening)."""
        try:
            async with asyncio.timeout(STORE_WAIT):
                await self._store_open.wait()
        except TimeoutError:
            return error_line("the ledger store is not open yet; try again", "store_not_open")
        assert self._store is not None
        if not self._store.embedded:
            return error_line("the ledger is on a ClickHouse server: query it directly", "not_embedded")
        return await self._queries.answer(sql, parameters)

    async def _open_store(self) -> None:
        # The store may still be held by a process on its way out (the previous ledger process): the rows wait.
        backoff = Backoff(_OPEN_FIRST, _OPEN_MAX)
        while True:
            try:
                store = await asyncio.to_thread(ClickHouseStore.open, self.settings)
                await store.run(upgrade_clickhouse, store)
                break
            except Exception as exc:  # any failure to open is retried: the spill holds the rows meanwhile
                delay = backoff.next()
                log.warning("ledger process cannot open ClickHouse; retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)
        self._store = store
        self._store_open.set()  # the read-only client opens with the first query

    async def _scan(self) -> None:
        """Replay dead writers' spills every RESCAN (or when poked), and tell gateways a pass is done."""
        ingestor = self._recovery.ingest_to(await self.opened())
        while True:
            self._scan_wake.clear()
            self._passes += 1
            number = self._passes
            await recover_instances(self.settings.spill_dir, "", ingestor, self._recovery.backlog, self._followed)
            for follower in self.followers:
                if follower.need_pass <= number and not follower.reporter.recovered:
                    follower.reporter.recovered = True
                    follower.reporter.poke()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESCAN):
                    await self._scan_wake.wait()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(handle(self, reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def listen(self) -> asyncio.AbstractServer:
        """The socket, mode 0600 from birth, in the data dir made private (mode 0700)."""
        data_dir = self.settings.data_dir
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.chmod(data_dir, 0o700)  # it holds the ledger, the keys database and this socket
        except OSError as exc:  # not ours to change (a mount point): the socket's mode and the uid check remain
            log.warning("ledger process: cannot make %s private: %s", data_dir, exc)
        path = socket_path(data_dir)
        path.unlink(missing_ok=True)  # a socket left by a killed ledger process (we hold the lock)
        mask = os.umask(0o177)
        try:
            with ShortPath(path) as address:
                server = await asyncio.start_unix_server(self._accept, address, limit=REQUEST_LIMIT)
        finally:
            os.umask(mask)
        os.chmod(path, 0o600)
        return server

    async def run(self) -> None:
        """Serve until stopped."""
        server = await self.listen()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.call_later(IDLE_EXIT, self._stop_if_idle)
        work = [asyncio.create_task(self._open_store()), asyncio.create_task(self._scan()),
                asyncio.create_task(self._recovery.reporter.run())]
        try:
            await self._stop.wait()
        finally:
            await self._shut_down(server, work)

    def _stop_if_idle(self) -> None:
        if not self.followers:
            log.info("ledger process: no gateway process connected; stopping")
            self.request_stop()

    async def _shut_down(self, server: asyncio.AbstractServer, work: list[asyncio.Task[None]]) -> None:
        self.stopping = True
        server.close()
        socket_path(self.settings.data_dir).unlink(missing_ok=True)  # new readers wait for the lock instead
        for task in [*work, *self._handlers]:
            task.cancel()
        await asyncio.gather(*work, *self._handlers, return_exceptions=True)
        await self._recovery.close()
        await self._queries.close()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)


def _claim(settings: Settings) -> int | None:
    """The ledger lock with this process's pid in it, or None when another ledger process holds it."""
    fd = take_lock(settings.data_dir)
    if fd is not None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def main() -> None:
    """Entry point: take the lock or leave; keep stdout for the engine's chatter out of the gateway's."""
    os.dup2(2, 1)
    settings = Settings.model_validate(orjson.loads(sys.stdin.buffer.readline()))
    configure_logging(settings.log_level)
    if _claim(settings) is None:
        return  # another ledger process serves this data directory
    asyncio.run(LedgerProcess(settings).run())
    # The lock's descriptor is closed by the exit itself, after the engine is gone.


if __name__ == "__main__":
    main()
