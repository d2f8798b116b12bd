"""What one call cost, from its normalised token usage and the model's price: one formula for every provider.

    cost = uncached_prompt_tokens * input
         + cached_tokens          * (cached_input, else input)
         + cache_write_tokens     * (cache_write, else input)
         + completion_tokens      * output
    where uncached_prompt_tokens = prompt_tokens - cached_tokens - cache_write_tokens.

One formula serves both conventions because the adapters normalise usage first: OpenAI already counts cached
tokens inside prompt_tokens; Anthropic reports cache_read_input_tokens and cache_creation_input_tokens apart from
input_tokens, and its adapter adds them into prompt_tokens. Embeddings have no completion tokens, so no output cost.

Batch API calls (batch=True) use batch_input and batch_output; where the table has no batch price, half the
regular price (both providers' Batch APIs charge 50%). Cached reads and cache writes in a batch get the same
discount as plain input (their price * batch_input / input): the table carries no batch cache prices, and this
reproduces every batch cache price litellm lists for the seeded models except gpt-5.4's cache read, which OpenAI
rounds up to $0.13 per million where the ratio gives $0.125.

The result is rounded half-even to 9 decimal places, the precision of the ledger's Decimal(18, 9) column.
A model with no known price costs None, never a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from core.prices.table import ModelPrice
from core.usage import Usage

USD_QUANTUM = Decimal("0.000000001")
BATCH_FALLBACK_FACTOR = Decimal("0.5")


@dataclass(frozen=True, slots=True)
class Cost:
    """USD paid for one call; usd is None (and priced False) when no price is known for the model."""

    usd: Decimal | None
    priced: bool


UNPRICED = Cost(usd=None, priced=False)


@dataclass(frozen=True, slots=True)
class _Rates:
    """USD per token for each kind of token, after fallbacks and the batch discount."""

    input: Decimal
    cached: Decimal
    cache_write: Decimal
    output: Decimal


def compute_cost(usage: Usage, price: ModelPrice | None, *, batch: bool = False) -> Cost:
    """The cost of one call under the formula in this module's docstring."""
    if price is None:
        return UNPRICED
    rates = _batch_rates(price) if batch else _rates(price)
    usd = (
        usage.uncached_prompt_tokens * rates.input
        + usage.cached_tokens * rates.cached
        + usage.cache_write_tokens * rates.cache_write
        + usage.completion_tokens * rates.output
    )
    return Cost(usd=usd.quantize(USD_QUANTUM, rounding=ROUND_HALF_EVEN), priced=True)


def batch_money(usage: Usage, price: ModelPrice | None) -> tuple[str | None, str | None, str]:
    """(cost at batch prices, baseline at synchronous prices, savings) as the ledger stores them; an unpriced
    model's cost and baseline are NULL (None) and its savings zero."""
    cost, baseline = compute_cost(usage, price, batch=True).usd, compute_cost(usage, price).usd
    if cost is None or baseline is None:
        return None, None, "0"
    return str(cost), str(baseline), str(baseline - cost)


def _rates(price: ModelPrice) -> _Rates:
    """Regular rates; cache reads and writes without their own price are charged as plain input."""
    # `is None`, not `or`: a cache price of exactly zero is a real price, not a missing one.
    cached = price.input if price.cached_input is None else price.cached_input
    cache_write = price.input if price.cache_write is None else price.cache_write
    return _Rates(input=price.input, cached=cached, cache_write=cache_write, output=price.output)


def _batch_rates(price: ModelPrice) -> _Rates:
    """Batch API rates: the table's batch prices, else half; cache prices scaled like plain input."""
    regular = _rates(price)
    batch_input = price.input * BATCH_FALLBACK_FACTOR if price.batch_input is None else price.batch_input
    batch_output = price.output * BATCH_FALLBACK_FACTOR if price.batch_output is None else price.batch_output
    factor = batch_input / price.input if price.input > 0 else BATCH_FALLBACK_FACTOR
    return _Rates(
        input=batch_input,
        cached=regular.cached * factor,
        cache_write=regular.cache_write * factor,
        output=batch_output,
    )
