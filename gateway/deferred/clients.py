"""The seam every provider's batch client implements, and the table that picks one by provider kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import aiohttp

from core.config import ProviderConfig
from core.deferred_models import DeferredJob, DeferredRequest
from gateway.deferred.anthropic_batches import AnthropicBatches, anthropic_error
from gateway.deferred.http import BatchHTTP, ErrorMapper
from gateway.deferred.openai_batches import AzureBatches, OpenAIBatches
from gateway.deferred.outcome import BatchState, Outcome
from gateway.providers.base import error_from_status
from gateway.providers.http import Timeouts


class BatchClient(Protocol):
    """A provider's batch API: create a job's batch, find one a dead process created, poll it, read its results."""

    async def create(
        self, job: DeferredJob, requests: Sequence[DeferredRequest], on_file: Callable[[str], Awaitable[None]]
    ) -> str:
        """Submit the requests as one batch; returns the provider's batch id."""
        ...

    async def find(self, job: DeferredJob, known: set[str]) -> str | None:
        """The provider's batch for a job left in creating, or None if it was never created."""
        ...

    async def status(self, batch_id: str) -> BatchState:
        """Where the provider is with the batch."""
        ...

    async def results(self, state: BatchState, models: Mapping[str, str]) -> dict[str, Outcome]:
        """The outcome of every request with a result line, by deferred id (`models`: id → requested model)."""
        ...


BatchFactory = Callable[[ProviderConfig, BatchHTTP], BatchClient]
# Provider kind → its batch client and how its error answers map to ours.
BATCH_KINDS: Mapping[str, tuple[BatchFactory, ErrorMapper]] = {
    "openai": (OpenAIBatches, error_from_status),
    "azure": (AzureBatches, error_from_status),
    "anthropic": (AnthropicBatches, anthropic_error),
}


def build_clients(
    providers: Mapping[str, ProviderConfig], session: aiohttp.ClientSession, timeouts: Timeouts
) -> dict[str, BatchClient]:
    """One batch client per configured provider whose kind has a batch API, keyed by provider name."""
    clients: dict[str, BatchClient] = {}
    for name, config in providers.items():
        kind = BATCH_KINDS.get(config.kind)
        if kind is not None:
            factory, errors = kind
            clients[name] = factory(config, BatchHTTP(session, timeouts, name, errors))
    return clients
