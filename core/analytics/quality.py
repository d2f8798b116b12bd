"""How much the cache answered (by calls and by tokens), and how much of the cost is estimated or unknown."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.analytics.query import ZERO, Query, Run, ratio


@dataclass(frozen=True)
class CacheReport:
    """Netra's response cache and coalescing over the period, and the providers' own prompt caching.

    Rates are over every call of the period: `hit_rate` = cache hits / calls, `reuse_rate` = (hits + coalesced)
    / calls; the token rates weigh each call by its prompt + completion tokens. `prompt_cache_rate` is the
    share of prompt tokens the providers read from their prompt cache (a provider discount, not a Netra saving).
    """

    requests: int
    hits: int
    coalesced: int
    tokens: int
    hit_tokens: int
    coalesced_tokens: int
    prompt_tokens: int
    cached_prompt_tokens: int
    hit_rate: Decimal | None
    reuse_rate: Decimal | None
    hit_rate_tokens: Decimal | None
    reuse_rate_tokens: Decimal | None
    prompt_cache_rate: Decimal | None


def cache_hit_rate(run: Run, query: Query) -> CacheReport:
    """Cache hits and coalesced calls against all calls, by calls and by tokens."""
    where, params = query.rollup_where()
    sql = (
        "SELECT value, sum(requests), sum(prompt_tokens) + sum(completion_tokens), sum(prompt_tokens), "
        f"sum(cached_prompt_tokens) FROM llm_calls_dims_hourly{where} AND dimension = 'cache_outcome' GROUP BY value"
    )
    outcomes = {row[0]: tuple(int(v) for v in row[1:]) for row in run(sql, params)}
    none = (0, 0, 0, 0)
    requests, tokens, prompt, cached = (sum(values[i] for values in outcomes.values()) for i in range(4))
    hits, hit_tokens = outcomes.get("hit", none)[:2]
    coalesced, coalesced_tokens = outcomes.get("coalesced", none)[:2]
    return CacheReport(
        requests=requests, hits=hits, coalesced=coalesced, tokens=tokens, hit_tokens=hit_tokens,
        coalesced_tokens=coalesced_tokens, prompt_tokens=prompt, cached_prompt_tokens=cached,
        hit_rate=ratio(hits, requests), reuse_rate=ratio(hits + coalesced, requests),
        hit_rate_tokens=ratio(hit_tokens, tokens), reuse_rate_tokens=ratio(hit_tokens + coalesced_tokens, tokens),
        prompt_cache_rate=ratio(cached, prompt),
    )


@dataclass(frozen=True)
class CostQuality:
    """How firm the period's cost is: the part priced on Netra's token estimates, and the calls with no price.

    `estimated_cost_share` = cost of calls with estimated tokens / cost of all calls (None when there is no
    cost). `unpriced_by_model` counts calls whose cost is unknown per served model (a model with no price, and
    `gateway_crash` rows, whose cost nobody can know), most first.
    """

    requests: int
    cost_usd: Decimal
    estimated_requests: int
    estimated_cost_usd: Decimal
    estimated_cost_share: Decimal | None
    unpriced_requests: int
    unpriced_by_model: dict[str, int]


def cost_quality(run: Run, query: Query) -> CostQuality:
    """The estimated share of the cost and the unpriced calls of the period."""
    where, params = query.rollup_where()
    totals_sql = (
        "SELECT sum(requests), sum(cost_usd), sum(estimated_requests), sum(estimated_cost_usd), "
        f"sum(unpriced_requests) FROM llm_calls_dims_hourly{where} AND dimension = 'endpoint'"
    )
    requests, cost, estimated, estimated_cost, unpriced = run(totals_sql, params)[0]
    models_sql = (
        f"SELECT toString(served_model) AS m, sum(unpriced_requests) AS n FROM llm_calls_hourly{where} "
        "GROUP BY m HAVING n > 0 ORDER BY n DESC, m"
    )
    by_model = {model: int(n) for model, n in run(models_sql, params)}
    cost, estimated_cost = Decimal(cost or ZERO), Decimal(estimated_cost or ZERO)
    return CostQuality(
        requests=int(requests), cost_usd=cost, estimated_requests=int(estimated),
        estimated_cost_usd=estimated_cost, estimated_cost_share=ratio(estimated_cost, cost),
        unpriced_requests=int(unpriced), unpriced_by_model=by_model,
    )
