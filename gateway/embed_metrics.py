"""The micro-batcher's metrics, registered on the app's own registry next to the gateway's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256, 512, 1024, 2048)


class BatchMetrics:
    """Batch sizes, provider calls saved, and shared calls undone by one member's bad input."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Histogram(
            "netra_embedding_batch_requests", "Client requests per upstream embeddings call the micro-batcher made.",
            ["provider"], buckets=_SIZE_BUCKETS, registry=registry,
        )
        self.inputs = Histogram(
            "netra_embedding_batch_inputs", "Inputs per upstream embeddings call the micro-batcher made.",
            ["provider"], buckets=_SIZE_BUCKETS, registry=registry,
        )
        self.saved = Counter(
            "netra_embedding_calls_saved", "Provider calls saved by micro-batching (a shared call's members minus 1).",
            ["provider"], registry=registry,
        )
        self.split = Counter(
            "netra_embedding_batch_split", "Shared calls refused for a member's input, retried member by member.",
            ["provider"], registry=registry,
        )
