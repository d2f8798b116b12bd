"""What the engine knows about a request: the few facts a policy can match on, gathered once by the gateway."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Features:
    """The facts of one request that policies match on (``model`` is the model the client asked for)."""

    tenant: str
    key_id: str
    model: str
    endpoint: str  # "chat/completions", "completions", "embeddings" or "responses"
    tags: frozenset[str] = frozenset()  # from x-netra-tags, comma-separated
    stream: bool = False
    tools: bool = False  # tools or functions present
    prompt_tokens: int = 0  # the gateway's estimate
    temperature: float | None = None  # None when the request leaves it out (the OpenAI default, 1.0)
    top_p: float | None = None
    seed_given: bool = False
    n: int = 1
