-- One row per call the gateway handled. ReplacingMergeTree on (tenant, time, request id) so a row replayed
-- by the spill can never count twice after merges; the writer also sends each batch with a deterministic
-- insert_deduplication_token, and the dedup window below makes ClickHouse drop a re-sent block outright.
CREATE TABLE IF NOT EXISTS llm_calls
(
    request_id String,
    received_at DateTime64(6, 'UTC'),
    first_byte_at Nullable(DateTime64(6, 'UTC')),
    finished_at DateTime64(6, 'UTC'),
    tenant_id String,
    tenant_name LowCardinality(String),
    key_id String,
    endpoint LowCardinality(String),
    requested_model LowCardinality(String),
    served_model LowCardinality(String),
    provider LowCardinality(String),
    status LowCardinality(String),
    http_status UInt16,
    error_code LowCardinality(String),
    stream Bool,
    cache_outcome LowCardinality(String),
    policy_id String,
    policy_version UInt32,
    prompt_tokens UInt32,
    completion_tokens UInt32,
    cached_prompt_tokens UInt32,
    cache_write_tokens UInt32,
    tokens_estimated Bool,
    cost_usd Nullable(Decimal(18, 9)),
    baseline_cost_usd Nullable(Decimal(18, 9)),
    savings_usd Decimal(18, 9),
    savings_kind LowCardinality(String),
    price_version LowCardinality(String),
    latency_ms Float64,
    ttft_ms Nullable(Float64),
    upstream_attempts UInt8,
    request_hash String,
    prompt_chars UInt32,
    tags Array(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (tenant_id, received_at, request_id)
SETTINGS non_replicated_deduplication_window = 10000;
