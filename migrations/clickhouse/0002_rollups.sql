-- Rollups of llm_calls, kept by materialized views: hourly per tenant and model (dashboard), daily per tenant
-- (invoices). Sums are SimpleAggregateFunction so a plain SELECT reads them; latency percentiles are quantile
-- states, read with quantilesMerge. Money is summed as Decimal(38, 9); an unknown cost counts as 0 in the sums
-- and is counted in unpriced_requests instead.
-- The source columns are qualified (c.x) because the output aliases reuse source column names.
-- Each target keeps a dedup window so a block re-sent with the same insert_deduplication_token (the writer
-- also sets deduplicate_blocks_in_dependent_materialized_views = 1) is dropped here as in llm_calls.
-- The rollups count inserted blocks: a row re-sent under a NEW token is collapsed in llm_calls FINAL but
-- counted twice here, which is why reports that must be exact read llm_calls FINAL.
CREATE TABLE IF NOT EXISTS llm_calls_hourly
(
    tenant_id String,
    hour DateTime('UTC'),
    served_model LowCardinality(String),
    provider LowCardinality(String),
    requested_model LowCardinality(String),
    tenant_name SimpleAggregateFunction(anyLast, String),
    requests SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    cache_hits SimpleAggregateFunction(sum, UInt64),
    unpriced_requests SimpleAggregateFunction(sum, UInt64),
    prompt_tokens SimpleAggregateFunction(sum, UInt64),
    completion_tokens SimpleAggregateFunction(sum, UInt64),
    cached_prompt_tokens SimpleAggregateFunction(sum, UInt64),
    cache_write_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    baseline_cost_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_cache_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_coalesce_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_route_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_batch_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    latency_ms_quantiles AggregateFunction(quantiles(0.5, 0.9, 0.99), Float64),
    ttft_ms_quantiles AggregateFunction(quantiles(0.5, 0.9, 0.99), Nullable(Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, served_model, provider, requested_model)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_hourly_mv TO llm_calls_hourly AS
SELECT
    c.tenant_id AS tenant_id,
    toStartOfHour(toDateTime(c.received_at, 'UTC')) AS hour,
    c.served_model AS served_model,
    c.provider AS provider,
    c.requested_model AS requested_model,
    anyLast(toString(c.tenant_name)) AS tenant_name,
    count() AS requests,
    countIf(c.http_status >= 400 OR c.status IN ('gateway_crash', 'client_cancelled')) AS errors,
    countIf(c.cache_outcome = 'hit') AS cache_hits,
    countIf(c.cost_usd IS NULL) AS unpriced_requests,
    sum(toUInt64(c.prompt_tokens)) AS prompt_tokens,
    sum(toUInt64(c.completion_tokens)) AS completion_tokens,
    sum(toUInt64(c.cached_prompt_tokens)) AS cached_prompt_tokens,
    sum(toUInt64(c.cache_write_tokens)) AS cache_write_tokens,
    sum(toDecimal128(ifNull(c.cost_usd, 0), 9)) AS cost_usd,
    sum(toDecimal128(ifNull(c.baseline_cost_usd, 0), 9)) AS baseline_cost_usd,
    sum(toDecimal128(c.savings_usd, 9)) AS savings_usd,
    sumIf(toDecimal128(c.savings_usd, 9), c.savings_kind = 'cache') AS savings_cache_usd,
    sumIf(toDecimal128(c.savings_usd, 9), c.savings_kind = 'coalesce') AS savings_coalesce_usd,
    sumIf(toDecimal128(c.savings_usd, 9), c.savings_kind = 'route') AS savings_route_usd,
    sumIf(toDecimal128(c.savings_usd, 9), c.savings_kind = 'batch') AS savings_batch_usd,
    quantilesState(0.5, 0.9, 0.99)(c.latency_ms) AS latency_ms_quantiles,
    quantilesState(0.5, 0.9, 0.99)(c.ttft_ms) AS ttft_ms_quantiles
FROM llm_calls AS c
GROUP BY tenant_id, hour, served_model, provider, requested_model;

CREATE TABLE IF NOT EXISTS llm_calls_daily
(
    tenant_id String,
    day Date,
    tenant_name SimpleAggregateFunction(anyLast, String),
    requests SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    cache_hits SimpleAggregateFunction(sum, UInt64),
    unpriced_requests SimpleAggregateFunction(sum, UInt64),
    prompt_tokens SimpleAggregateFunction(sum, UInt64),
    completion_tokens SimpleAggregateFunction(sum, UInt64),
    cached_prompt_tokens SimpleAggregateFunction(sum, UInt64),
    cache_write_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    baseline_cost_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_cache_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_coalesce_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_route_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_batch_usd SimpleAggregateFunction(sum, Decimal(38, 9))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_daily_mv TO llm_calls_daily AS
SELECT
    c.tenant_id AS tenant_id,
    toDate(c.received_at, 'UTC') AS day,
    anyLast(toString(c.tenant_name)) AS tenant_name,
    count() AS requests,
    countIf(c.http_status >= 400 OR c.status IN ('gateway_crash', 'client_cancelled')) AS errors,
    countIf(c.cache_outcome = 'hit') AS cache_hits,
    countIf(c.cost_usd IS NULL) AS unpriced_requests,
    sum(toUInt64(c.prompt_tokens)) AS prompt_tokens,
    sum(toUInt64(c.completion_tokens)) AS completion_tokens,
    sum(toUInt64(c.cached_prompt_tokens)) AS cached_prompt_tokens,
    sum(toUInt64(c.cache_write_tokens)) AS cache_write_tokens,
    sum(toDecimal128(ifNull(c.cost_usd, 0), 9)) AS cost_usd,
    sum(toDecimal128(ifNull(c.baseline_cost_usd, 0), 9)) AS baseline_cost_usd,
    sum(toDecimal128(c.savings_usd, 9)) AS savings_usd,
    sumIf(toDecimal128(c.savings_usd, 9), c.savings_kind = 'cache') AS savings_cache_usd,
    sumIf(toDecimal128(c.savings_usd, 9), c.savings_kind = 'coalesce') AS savings_coalesce_usd,
    sumIf(toDecimal128(c.savings_usd, 9), c.savings_kind = 'route') AS savings_route_usd,
    sumIf(toDecimal128(c.savings_usd, 9), c.savings_kind = 'batch') AS savings_batch_usd
FROM llm_calls AS c
GROUP BY tenant_id, day;
