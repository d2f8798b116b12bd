-- Rollups for the admin app's analytics (core/analytics), so that every analytic reads a few hundred thousand
-- rollup rows rather than scanning llm_calls (10 million rows a month answer in well under a second this way).
--
-- llm_calls_dims_hourly: one row per (dimension, tenant, hour, value) for the dimensions the hourly rollup lacks.
-- Every call lands once in each of the dimensions endpoint, key, status, error_code, cache_outcome and
-- savings_kind, and once per distinct tag in 'tag' ('' when it has none), so the sums over any one of the first
-- six dimensions are the totals of all calls. Money as in 0002: NULL counts as 0 and as unpriced_requests.
-- estimated_cost_usd is the cost of the calls whose tokens Netra estimated (tokens_estimated).
--
-- llm_calls_latency_hourly: latency and time-to-first-token histograms per (tenant, hour, served model), as
-- sumMap(bucket -> calls). Bucket b holds the values in [0.1 * 1.05^b, 0.1 * 1.05^(b+1)) ms (bucket 0 also
-- everything below 0.1 ms), so a percentile read from them is within 2.5% of the exact one; unlike quantile
-- states they merge exactly and stay small however many calls an hour has.
--
-- Both count inserted blocks like 0002's rollups (the same dedup window drops a block re-sent with its token),
-- and both are backfilled from llm_calls FINAL when they are created, only while still empty, so re-running this
-- file after a crash does not count old rows twice.
CREATE TABLE IF NOT EXISTS llm_calls_dims_hourly
(
    dimension LowCardinality(String),
    tenant_id String,
    hour DateTime('UTC'),
    value String,
    requests SimpleAggregateFunction(sum, UInt64),
    errors SimpleAggregateFunction(sum, UInt64),
    unpriced_requests SimpleAggregateFunction(sum, UInt64),
    estimated_requests SimpleAggregateFunction(sum, UInt64),
    prompt_tokens SimpleAggregateFunction(sum, UInt64),
    completion_tokens SimpleAggregateFunction(sum, UInt64),
    cached_prompt_tokens SimpleAggregateFunction(sum, UInt64),
    cost_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    baseline_cost_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    savings_usd SimpleAggregateFunction(sum, Decimal(38, 9)),
    estimated_cost_usd SimpleAggregateFunction(sum, Decimal(38, 9))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (dimension, tenant_id, hour, value)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_dims_hourly_mv TO llm_calls_dims_hourly AS
SELECT
    dim.1 AS dimension,
    c.tenant_id AS tenant_id,
    toStartOfHour(toDateTime(c.received_at, 'UTC')) AS hour,
    dim.2 AS value,
    count() AS requests,
    countIf(c.http_status >= 400 OR c.status IN ('gateway_crash', 'client_cancelled')) AS errors,
    countIf(c.cost_usd IS NULL) AS unpriced_requests,
    countIf(c.tokens_estimated) AS estimated_requests,
    sum(toUInt64(c.prompt_tokens)) AS prompt_tokens,
    sum(toUInt64(c.completion_tokens)) AS completion_tokens,
    sum(toUInt64(c.cached_prompt_tokens)) AS cached_prompt_tokens,
    sum(toDecimal128(ifNull(c.cost_usd, 0), 9)) AS cost_usd,
    sum(toDecimal128(ifNull(c.baseline_cost_usd, 0), 9)) AS baseline_cost_usd,
    sum(toDecimal128(c.savings_usd, 9)) AS savings_usd,
    sumIf(toDecimal128(ifNull(c.cost_usd, 0), 9), c.tokens_estimated) AS estimated_cost_usd
FROM llm_calls AS c
ARRAY JOIN arrayConcat(
    [('endpoint', toString(c.endpoint)), ('key', c.key_id), ('status', toString(c.status)),
     ('error_code', toString(c.error_code)), ('cache_outcome', toString(c.cache_outcome)),
     ('savings_kind', toString(c.savings_kind))],
    arrayMap(t -> ('tag', t), if(empty(c.tags), [''], arrayDistinct(c.tags)))
) AS dim
GROUP BY dimension, tenant_id, hour, value;

CREATE TABLE IF NOT EXISTS llm_calls_latency_hourly
(
    tenant_id String,
    hour DateTime('UTC'),
    served_model LowCardinality(String),
    latency_ms SimpleAggregateFunction(sumMap, Map(UInt16, UInt64)),
    ttft_ms SimpleAggregateFunction(sumMap, Map(UInt16, UInt64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, served_model)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_latency_hourly_mv TO llm_calls_latency_hourly AS
SELECT
    c.tenant_id AS tenant_id,
    toStartOfHour(toDateTime(c.received_at, 'UTC')) AS hour,
    c.served_model AS served_model,
    sumMap(map(toUInt16(least(65535, floor(log(greatest(c.latency_ms, 0.1) / 0.1) / log(1.05)))), toUInt64(1)))
        AS latency_ms,
    sumMapIf(map(toUInt16(least(65535, floor(log(greatest(ifNull(c.ttft_ms, 0), 0.1) / 0.1) / log(1.05)))),
        toUInt64(1)), c.ttft_ms IS NOT NULL) AS ttft_ms
FROM llm_calls AS c
GROUP BY tenant_id, hour, served_model;

INSERT INTO llm_calls_dims_hourly
SELECT
    dim.1 AS dimension,
    c.tenant_id AS tenant_id,
    toStartOfHour(toDateTime(c.received_at, 'UTC')) AS hour,
    dim.2 AS value,
    count() AS requests,
    countIf(c.http_status >= 400 OR c.status IN ('gateway_crash', 'client_cancelled')) AS errors,
    countIf(c.cost_usd IS NULL) AS unpriced_requests,
    countIf(c.tokens_estimated) AS estimated_requests,
    sum(toUInt64(c.prompt_tokens)) AS prompt_tokens,
    sum(toUInt64(c.completion_tokens)) AS completion_tokens,
    sum(toUInt64(c.cached_prompt_tokens)) AS cached_prompt_tokens,
    sum(toDecimal128(ifNull(c.cost_usd, 0), 9)) AS cost_usd,
    sum(toDecimal128(ifNull(c.baseline_cost_usd, 0), 9)) AS baseline_cost_usd,
    sum(toDecimal128(c.savings_usd, 9)) AS savings_usd,
    sumIf(toDecimal128(ifNull(c.cost_usd, 0), 9), c.tokens_estimated) AS estimated_cost_usd
FROM llm_calls AS c FINAL
ARRAY JOIN arrayConcat(
    [('endpoint', toString(c.endpoint)), ('key', c.key_id), ('status', toString(c.status)),
     ('error_code', toString(c.error_code)), ('cache_outcome', toString(c.cache_outcome)),
     ('savings_kind', toString(c.savings_kind))],
    arrayMap(t -> ('tag', t), if(empty(c.tags), [''], arrayDistinct(c.tags)))
) AS dim
WHERE (SELECT count() FROM llm_calls_dims_hourly) = 0
GROUP BY dimension, tenant_id, hour, value;

INSERT INTO llm_calls_latency_hourly
SELECT
    c.tenant_id AS tenant_id,
    toStartOfHour(toDateTime(c.received_at, 'UTC')) AS hour,
    c.served_model AS served_model,
    sumMap(map(toUInt16(least(65535, floor(log(greatest(c.latency_ms, 0.1) / 0.1) / log(1.05)))), toUInt64(1)))
        AS latency_ms,
    sumMapIf(map(toUInt16(least(65535, floor(log(greatest(ifNull(c.ttft_ms, 0), 0.1) / 0.1) / log(1.05)))),
        toUInt64(1)), c.ttft_ms IS NOT NULL) AS ttft_ms
FROM llm_calls AS c FINAL
WHERE (SELECT count() FROM llm_calls_latency_hourly) = 0
GROUP BY tenant_id, hour, served_model;
