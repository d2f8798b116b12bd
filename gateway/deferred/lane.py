"""The deferred lane's background worker: submit due groups, reconcile interrupted creates, poll jobs, purge.

Started with the gateway and stopped before its ledger closes. Each round is a few small queries; all the
coordination between gateway processes is in the database (gateway/deferred/jobs.py), none in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy import update

from core.config import ProviderConfig
from core.deferred_models import DeferredJob
from core.models import utcnow
from core.prices import PriceTable
from core.settings import Settings
from gateway.deferred import work
from gateway.deferred.clients import BatchClient, build_clients
from gateway.deferred.jobs import Sessions
from gateway.deferred.store import purge
from gateway.ledger import Ledger
from gateway.providers.http import Timeouts, create_session

log = logging.getLogger("netra.gateway.deferred")
# A fetched result stays this long (a client retrying its GET still finds it); any result at most KEEP.
FETCHED_GRACE = timedelta(hours=1)
KEEP = timedelta(days=7)
PURGE_EVERY = timedelta(minutes=5)
MIN_TICK, MAX_TICK = 0.05, 5.0


@dataclass(slots=True)
class LaneContext:
    """What every step of the worker uses."""

    settings: Settings
    sessions: Sessions
    clients: Mapping[str, BatchClient]
    ledger: Ledger
    prices: PriceTable
    owner: str

    @property
    def create_lease(self) -> float:
        """How long a create may take before another process may reconcile it (the upstream total timeout)."""
        return self.settings.upstream_total_timeout + 60.0

    @property
    def poll_lease(self) -> float:
        """How long one poll (status, result files, storing) may hold its job."""
        return self.settings.upstream_total_timeout + 60.0


class DeferredLane:
    """The worker task of one gateway process."""

    def __init__(
        self, settings: Settings, sessions: Sessions, providers: Callable[[], Mapping[str, ProviderConfig]],
        ledger: Ledger, prices: PriceTable,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        # The providers' configs as they are now: an admin may rotate a key or base URL while Netra runs.
        self.providers = providers
        self._configs: dict[str, ProviderConfig] = {}
        self._session: aiohttp.ClientSession | None = None
        self.ledger = ledger
        self.prices = prices
        self.owner = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None
        self._closing = False  # the loop also stops on this, should a cancellation be swallowed on its way
        self._purged: datetime | None = None
        self.ctx: LaneContext | None = None

    @property
    def tick(self) -> float:
        """Seconds between rounds: often enough for the window and the poll interval, never busy."""
        s = self.settings
        return min(max(min(s.defer_window, s.defer_poll_interval) / 4, MIN_TICK), MAX_TICK)

    async def start(self, stack: AsyncExitStack) -> None:
        """Open the lane's HTTP session and start the worker; both end with the stack."""
        self._session = create_session(self.settings)
        stack.push_async_callback(self._session.close)
        self.ctx = LaneContext(self.settings, self.sessions, {}, self.ledger, self.prices, self.owner)
        self.refresh(self.ctx)
        self._task = asyncio.create_task(self._run(self.ctx), name="netra-deferred")
        stack.push_async_callback(self.close)

    async def close(self) -> None:
        """Stop the worker and hand this process's leases back (another process, or the next start, goes on)."""
        if self._task is None:
            return
        self._closing = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        j = DeferredJob
        try:
            async with self.sessions() as session:
                await session.execute(update(j).where(j.owner == self.owner).values(lease_until=utcnow()))
                await session.commit()
        except Exception:  # the database may be down at shutdown: the leases then simply run out
            log.warning("deferred leases not handed back at shutdown", exc_info=True)

    def refresh(self, ctx: LaneContext) -> None:
        """Rebuild the batch clients when a provider's config changed (a rotated key, a new base URL)."""
        configs = dict(self.providers())
        if configs != self._configs and self._session is not None:
            ctx.clients = build_clients(configs, self._session, Timeouts.from_settings(self.settings))
            self._configs = configs

    async def _run(self, ctx: LaneContext) -> None:
        while not self._closing:
            self.refresh(ctx)
            await self.round(ctx)
            await asyncio.sleep(self.tick)

    async def round(self, ctx: LaneContext) -> None:
        """One pass over every kind of work; a step that fails is logged and retried next round."""
        steps: tuple[Callable[[LaneContext], Awaitable[None]], ...] = (
            work.reconcile, work.submit_due, work.poll_due, work.record_leftovers, self._purge,
        )
        for step in steps:
            try:
                await step(ctx)
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive a database or provider outage; the next round retries
                log.exception("deferred lane step failed", extra={"step": step.__name__})

    async def _purge(self, ctx: LaneContext) -> None:
        moment = utcnow()
        if self._purged is not None and moment - self._purged < PURGE_EVERY:
            return
        self._purged = moment
        removed = await purge(ctx.sessions, moment, FETCHED_GRACE, KEEP)
        if removed:
            log.info("deferred results purged", extra={"requests": removed})
