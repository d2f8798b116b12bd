-- Rollups for the admin app's analytics (core/analytics), so that every analytic reads a few hundred thousand
-- rollup rows rather than scanning llm_calls (10 million rows a month answer in well under a second this way).
--
-- llm_calls_dims_hourly: one row per (dimension, tenant, hour, value) for the dimensions the hourly rollup lacks.
-- Every call lands once in each of the dimensions endpoint, key, status, error_code, cache_outcome and
-- savings_kind, and once per distinct tag in 'tag' ('' when it has none), so the sums over any one of the first
-- six dimensions are the totals of all calls. Money as in 0002: NULL counts as 0 and as unpriced_requests.
-- estimated_cost_usd is the cost of the calls whose tokens Netra estimated (tokens_estimated).
--
-- llm_calls_latency_hourly: latency and time-to-first-token histograms per (tenant, hour, served model): calls per
-- (metric, bucket), metric 'latency' (every call) or 'ttft' (calls with a first byte). Bucket b holds the values
-- in [0.1 * 1.05^b, 0.1 * 1.05^(b+1)) ms (bucket 0 also everything below 0.1 ms), so a percentile read from them
-- is within 2.5% of the exact one; unlike quantile states they merge exactly and stay small however many calls
-- an hour has. One row per bucket rather than a map per hour: summing rows is several times faster than sumMap.
-- At an hour's grain a histogram is nearly as long as the hour's calls, so llm_calls_latency_daily holds the same
-- per day, for periods of whole days (a month of them is a few hundred thousand rows instead of ten million).
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
    g.tenant_id AS tenant_id,
    g.hour AS hour,
    dim.2 AS value,
    sum(g.requests) AS requests,
    sum(g.errors) AS errors,
    sum(g.unpriced_requests) AS unpriced_requests,
    sum(g.estimated_requests) AS estimated_requests,
    sum(g.prompt_tokens) AS prompt_tokens,
    sum(g.completion_tokens) AS completion_tokens,
    sum(g.cached_prompt_tokens) AS cached_prompt_tokens,
    sum(g.cost_usd) AS cost_usd,
    sum(g.baseline_cost_usd) AS baseline_cost_usd,
    sum(g.savings_usd) AS savings_usd,
    sum(g.estimated_cost_usd) AS estimated_cost_usd
FROM
(
    -- Calls alike in every dimension first, so the fan-out below multiplies groups, not calls.
    SELECT
        c.tenant_id AS tenant_id,
        toStartOfHour(toDateTime(c.received_at, 'UTC')) AS hour,
        toString(c.endpoint) AS endpoint, c.key_id AS key_id, toString(c.status) AS status,
        toString(c.error_code) AS error_code, toString(c.cache_outcome) AS cache_outcome,
        toString(c.savings_kind) AS savings_kind, arraySort(arrayDistinct(c.tags)) AS tag_set,
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
    GROUP BY tenant_id, hour, endpoint, key_id, status, error_code, cache_outcome, savings_kind, tag_set
) AS g
ARRAY JOIN arrayConcat(
    [('endpoint', g.endpoint), ('key', g.key_id), ('status', g.status), ('error_code', g.error_code),
     ('cache_outcome', g.cache_outcome), ('savings_kind', g.savings_kind)],
    arrayMap(t -> ('tag', t), if(empty(g.tag_set), [''], g.tag_set))
) AS dim
GROUP BY dimension, tenant_id, hour, value;

CREATE TABLE IF NOT EXISTS llm_calls_latency_hourly
(
    tenant_id String,
    hour DateTime('UTC'),
    served_model LowCardinality(String),
    metric LowCardinality(String),
    bucket UInt16,
    calls SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant_id, hour, served_model, metric, bucket)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_latency_hourly_mv TO llm_calls_latency_hourly AS
SELECT
    c.tenant_id AS tenant_id,
    toStartOfHour(toDateTime(c.received_at, 'UTC')) AS hour,
    c.served_model AS served_model,
    m.1 AS metric,
    m.2 AS bucket,
    count() AS calls
FROM llm_calls AS c
ARRAY JOIN arrayConcat(
    [('latency', toUInt16(least(65535, floor(log(greatest(c.latency_ms, 0.1) / 0.1) / log(1.05)))))],
    if(c.ttft_ms IS NULL, [], [('ttft', toUInt16(least(65535, floor(log(greatest(ifNull(c.ttft_ms, 0), 0.1) / 0.1) / log(1.05)))))])
) AS m
GROUP BY tenant_id, hour, served_model, metric, bucket;

CREATE TABLE IF NOT EXISTS llm_calls_latency_daily
(
    tenant_id String,
    day Date,
    served_model LowCardinality(String),
    metric LowCardinality(String),
    bucket UInt16,
    calls SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, day, served_model, metric, bucket)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_calls_latency_daily_mv TO llm_calls_latency_daily AS
SELECT
    c.tenant_id AS tenant_id,
    toDate(c.received_at, 'UTC') AS day,
    c.served_model AS served_model,
    m.1 AS metric,
    m.2 AS bucket,
    count() AS calls
FROM llm_calls AS c
ARRAY JOIN arrayConcat(
    [('latency', toUInt16(least(65535, floor(log(greatest(c.latency_ms, 0.1) / 0.1) / log(1.05)))))],
    if(c.ttft_ms IS NULL, [], [('ttft', toUInt16(least(65535, floor(log(greatest(ifNull(c.ttft_ms, 0), 0.1) / 0.1) / log(1.05)))))])
) AS m
GROUP BY tenant_id, day, served_model, metric, bucket;

INSERT INTO llm_calls_dims_hourly
SELECT
    dim.1 AS dimension,
    g.tenant_id AS tenant_id,
    g.hour AS hour,
    dim.2 AS value,
    sum(g.requests) AS requests,
    sum(g.errors) AS errors,
    sum(g.unpriced_requests) AS unpriced_requests,
    sum(g.estimated_requests) AS estimated_requests,
    sum(g.prompt_tokens) AS prompt_tokens,
    sum(g.completion_tokens) AS completion_tokens,
    sum(g.cached_prompt_tokens) AS cached_prompt_tokens,
    sum(g.cost_usd) AS cost_usd,
    sum(g.baseline_cost_usd) AS baseline_cost_usd,
    sum(g.savings_usd) AS savings_usd,
    sum(g.estimated_cost_usd) AS estimated_cost_usd
FROM
(
    -- Calls alike in every dimension first, so the fan-out below multiplies groups, not calls.
    SELECT
        c.tenant_id AS tenant_id,
        toStartOfHour(toDateTime(c.received_at, 'UTC')) AS hour,
        toString(c.endpoint) AS endpoint, c.key_id AS key_id, toString(c.status) AS status,
        toString(c.error_code) AS error_code, toString(c.cache_outcome) AS cache_outcome,
        toString(c.savings_kind) AS savings_kind, arraySort(arrayDistinct(c.tags)) AS tag_set,
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
    GROUP BY tenant_id, hour, endpoint, key_id, status, error_code, cache_outcome, savings_kind, tag_set
) AS g
ARRAY JOIN arrayConcat(
    [('endpoint', g.endpoint), ('key', g.key_id), ('status', g.status), ('error_code', g.error_code),
     ('cache_outcome', g.cache_outcome), ('savings_kind', g.savings_kind)],
    arrayMap(t -> ('tag', t), if(empty(g.tag_set), [''], g.tag_set))
) AS dim
WHERE (SELECT count() FROM llm_calls_dims_hourly) = 0
GROUP BY dimension, tenant_id, hour, value;

INSERT INTO llm_calls_latency_hourly
SELECT
    c.tenant_id AS tenant_id,
    toStartOfHour(toDateTime(c.received_at, 'UTC')) AS hour,
    c.served_model AS served_model,
    m.1 AS metric,
    m.2 AS bucket,
    count() AS calls
FROM llm_calls AS c FINAL
ARRAY JOIN arrayConcat(
    [('latency', toUInt16(least(65535, floor(log(greatest(c.latency_ms, 0.1) / 0.1) / log(1.05)))))],
    if(c.ttft_ms IS NULL, [], [('ttft', toUInt16(least(65535, floor(log(greatest(ifNull(c.ttft_ms, 0), 0.1) / 0.1) / log(1.05)))))])
) AS m
WHERE (SELECT count() FROM llm_calls_latency_hourly) = 0
GROUP BY tenant_id, hour, served_model, metric, bucket;

INSERT INTO llm_calls_latency_daily
SELECT
    c.tenant_id AS tenant_id,
    toDate(c.received_at, 'UTC') AS day,
    c.served_model AS served_model,
    m.1 AS metric,
    m.2 AS bucket,
    count() AS calls
FROM llm_calls AS c FINAL
ARRAY JOIN arrayConcat(
    [('latency', toUInt16(least(65535, floor(log(greatest(c.latency_ms, 0.1) / 0.1) / log(1.05)))))],
    if(c.ttft_ms IS NULL, [], [('ttft', toUInt16(least(65535, floor(log(greatest(ifNull(c.ttft_ms, 0), 0.1) / 0.1) / log(1.05)))))])
) AS m
WHERE (SELECT count() FROM llm_calls_latency_daily) = 0
GROUP BY tenant_id, day, served_model, metric, bucket;

-- The calls explorer lists calls newest first across tenants; llm_calls is ordered by tenant first, so even an
-- hour's window touches a granule of every tenant. A projection ordered by time answers it from a couple of
-- granules. ReplacingMergeTree only takes projections when merges rebuild them (the merged rows change).
-- MATERIALIZE builds it for rows already there, as a background mutation.
ALTER TABLE llm_calls MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE llm_calls ADD PROJECTION IF NOT EXISTS calls_by_time (SELECT * ORDER BY received_at, request_id);

ALTER TABLE llm_calls MATERIALIZE PROJECTION calls_by_time;
