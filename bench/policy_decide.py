"""Micro-benchmark of the policy engine: microseconds per ``decide()`` with 100 active policies against none.

Run as ``python -m bench.policy_decide``. The 100 policies mix the three kinds (60 cache, 25 route, 15 batch) and
their matches the way a deployment grows them: per tenant, per model, per endpoint, by tag, by prompt size and
temperature, a fifth with no model named (wildcards every request meets). The requests cycle through 1 000
prepared ``Features`` over 20 tenants and 12 models, a share of them for models no policy names. Each figure is
the median (and the fastest) of several rounds; ``cacheable()`` is timed on top for the requests a cache policy
matched, since the gateway calls it next.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from policies.engine import Snapshot, cacheable, decide
from policies.features import Features
from policies.models import AnyPolicy, CachePolicy, parse_policy

ROUNDS = 31
REQUESTS = 1_000
TENANTS = [f"tenant-{i}" for i in range(20)]
MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3", "o4-mini", "claude-sonnet", "claude-haiku",
          "text-embedding-3-small", "text-embedding-3-large", "llama-70b", "mistral-large"]
ENDPOINTS = ["chat/completions", "chat/completions", "chat/completions", "completions", "embeddings", "responses"]
ACTIONS: dict[str, dict[str, Any]] = {
    "cache": {"ttl": "1h"},
    "route": {"targets": [{"model": "gpt-4o-mini", "weight": 90}, {"model": "gpt-4o", "weight": 10}]},
    "batch": {"window_ms": 5},
}


def _match(rng: random.Random) -> dict[str, Any]:
    match: dict[str, Any] = {"tenants": rng.sample(TENANTS, rng.randint(1, 3))}
    if rng.random() < 0.8:
        match["models"] = rng.sample(MODELS[:10], rng.randint(1, 2))
    if rng.random() < 0.5:
        match["endpoints"] = [rng.choice(ENDPOINTS[2:])]
    if rng.random() < 0.2:
        match["tags"] = [rng.choice(["nightly", "eval", "batch"])]
    if rng.random() < 0.3:
        match["prompt_tokens"] = {"max": rng.choice([200, 800, 4000])}
    if rng.random() < 0.3:
        match["temperature"] = {"max": rng.choice([0, 0.3])}
    return match


def policies(rng: random.Random) -> list[AnyPolicy]:
    """100 active policies: 60 cache, 25 route, 15 batch, with mixed matches and priorities."""
    kinds = ["cache"] * 60 + ["route"] * 25 + ["batch"] * 15
    return [
        parse_policy({"kind": kind, "id": f"pol_{i:03}", "name": f"p{i}", "status": "active",
                      "priority": rng.randint(0, 20), "match": _match(rng), **ACTIONS[kind]})
        for i, kind in enumerate(kinds)
    ]


def requests(rng: random.Random) -> list[Features]:
    """Prepared request features over the same tenants and models, plus models no policy names."""
    return [
        Features(tenant=rng.choice(TENANTS), key_id=f"key-{rng.randint(0, 99)}", model=rng.choice(MODELS),
                 endpoint=rng.choice(ENDPOINTS), tags=frozenset(rng.sample(["nightly", "eval"], rng.randint(0, 1))),
                 stream=rng.random() < 0.3, prompt_tokens=rng.randint(10, 3000),
                 temperature=rng.choice([None, 0.0, 0.7]), seed_given=rng.random() < 0.1)
        for _ in range(REQUESTS)
    ]


def timed(run: Callable[[], object], calls: int) -> tuple[float, float]:
    """Median and fastest microseconds per call over ROUNDS runs."""
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples), min(samples)


def _decide_all(batch: list[Features], snapshot: Snapshot) -> Callable[[], object]:
    return lambda: [decide(f, snapshot) for f in batch]


def _decide_and_check(batch: list[Features], snapshot: Snapshot) -> Callable[[], object]:
    def run() -> None:
        for f in batch:
            cache = decide(f, snapshot).cache
            if cache is not None:
                cacheable(f, cache)

    return run


def main() -> None:
    """Print µs per decide() for 0 and 100 active policies, and how often each kind matched."""
    rng = random.Random(9)
    active, batch = policies(rng), requests(rng)
    full, empty = Snapshot.build(1, active), Snapshot.empty()
    build = timed(lambda: Snapshot.build(1, active), 1)
    decisions = [decide(f, full) for f in batch]
    share = {kind: sum(getattr(d, kind) is not None for d in decisions) / len(batch) for kind in ACTIONS}
    pairs = zip(batch, decisions, strict=True)
    cached = sum(isinstance(d.cache, CachePolicy) and cacheable(f, d.cache) for f, d in pairs)
    print(f"{REQUESTS} requests, µs per call: median of {ROUNDS} rounds (fastest)")
    print("  matched: " + ", ".join(f"{kind} {value:.0%}" for kind, value in share.items())
          + f"; cacheable {cached / len(batch):.0%}")
    for label, run, snapshot in (
        ("decide, 0 policies", _decide_all, empty),
        ("decide, 100 active policies", _decide_all, full),
        ("decide + cacheable, 100 policies", _decide_and_check, full),
    ):
        median, fastest = timed(run(batch, snapshot), len(batch))
        print(f"  {label:34s} {median:6.2f} µs ({fastest:.2f})")
    print(f"  {'Snapshot.build, 100 policies':34s} {build[0] / 1000:6.2f} ms ({build[1] / 1000:.2f})")


if __name__ == "__main__":
    main()
