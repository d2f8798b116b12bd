"""Ten million realistic ledger rows, generated inside ClickHouse (`INSERT … SELECT … FROM numbers(N)`).

One month of traffic: 60 tenants with a heavy head (the biggest sends about a fifth of all calls), up to 12
keys each, four endpoints, eight models on four providers (one of them unpriced), the statuses, cache outcomes
and savings kinds of docs/ledger.md in plausible shares, 0-3 tags per call from ~25, log-normal latencies and
time to first token on streams. Every figure derives from `cityHash64(number, k)`, so a load is reproducible.
The rows go through `llm_calls` in blocks like the ingest's, so every materialized view fills as in production.
"""

from __future__ import annotations

from datetime import datetime

# (requested model, cheaper model a route policy sends it to, provider, input and output price in nano-USD
# per token); '' as a route target means never routed; a price of -1 means the model has no price.
MODELS: tuple[tuple[str, str, str, int, int], ...] = (
    ("gpt-4o", "gpt-4o-mini", "openai", 2500, 10000),
    ("gpt-4o-mini", "", "openai", 150, 600),
    ("gpt-4.1", "gpt-4.1-mini", "azure", 2000, 8000),
    ("gpt-4.1-mini", "", "azure", 400, 1600),
    ("claude-sonnet-4", "claude-haiku-3.5", "anthropic", 3000, 15000),
    ("claude-haiku-3.5", "", "anthropic", 800, 4000),
    ("text-embedding-3-small", "", "openai", 20, 0),
    ("llama-3.1-70b-local", "", "vllm", -1, -1),
)
MODEL_WEIGHTS = (0.22, 0.30, 0.08, 0.08, 0.12, 0.08, 0.10, 0.02)  # cumulative shares are built below
TEAMS = ("search", "support", "growth", "billing", "platform", "data", "mobile", "web", "ops", "legal")
FEATURES = ("summarise", "classify", "extract", "chat", "translate", "rerank", "draft", "qa")


def _u(k: int) -> str:
    """A uniform number in [0, 1) for the row, independent for each k."""
    return f"(cityHash64(number, {k}) % 1000000 / 1000000.0)"


def _array(values: tuple[object, ...]) -> str:
    return "[" + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values) + "]"


def _model_index() -> str:
    """1-based index into MODELS; embeddings take the embedding model, the other endpoints a chat model."""
    cumulative, total = [], 0.0
    for weight in MODEL_WEIGHTS:
        total += weight
        cumulative.append(round(total, 4))
    chat_pick = f"arrayFirstIndex(c -> {_u(4)} < c, {_array(tuple(cumulative))})"
    return f"if(endpoint = 'embeddings', 7, if({chat_pick} = 7, 2, {chat_pick}))"


_STATUS = f"""multiIf(
    {_u(5)} < 0.05, 'cache_hit', {_u(5)} < 0.06, 'coalesced', {_u(5)} < 0.075, 'upstream_error',
    {_u(5)} < 0.085, 'rate_limited', {_u(5)} < 0.092, 'invalid_request', {_u(5)} < 0.097, 'client_cancelled',
    {_u(5)} < 0.099, 'upstream_rejected', {_u(5)} < 0.0995, 'auth_error', {_u(5)} < 0.99955, 'ok',
    'gateway_crash')"""
_HTTP = """multiIf(status = 'upstream_error', [502, 503, 504][1 + number % 3], status = 'rate_limited', 429,
    status = 'invalid_request', [400, 404][1 + number % 2], status = 'client_cancelled', 499,
    status = 'upstream_rejected', 400, status = 'auth_error', 401, status = 'gateway_crash', 0, 200)"""
_ERROR_CODE = """multiIf(status = 'upstream_error', ['upstream_error', 'upstream_unavailable',
    'upstream_timeout'][1 + number % 3], status = 'rate_limited', 'rate_limit_exceeded',
    status = 'invalid_request', ['invalid_type', 'model_not_found'][1 + number % 2],
    status = 'upstream_rejected', 'context_length_exceeded', status = 'auth_error', 'invalid_api_key',
    status = 'gateway_crash', 'gateway_crash', '')"""


def _stage_one(start_us: int, span_us: int, count: int, offset: int) -> str:
    """Who called, when, where, and the outcome."""
    tenant = f"toUInt32(floor(60 * pow({_u(2)}, 2.2)))"
    return f"""SELECT number, tenant_idx, endpoint, status, model_idx, routed,
        fromUnixTimestamp64Micro(toInt64({start_us} + cityHash64(number, 1) % {span_us}), 'UTC') AS received_at
    FROM (SELECT number, {tenant} AS tenant_idx,
        multiIf({_u(3)} < 0.80, 'chat/completions', {_u(3)} < 0.92, 'embeddings',
                {_u(3)} < 0.97, 'responses', 'completions') AS endpoint,
        {_STATUS} AS status, {_model_index()} AS model_idx,
        status = 'ok' AND {_u(6)} < 0.10 AND {_array(tuple(m[1] for m in MODELS))}[model_idx] != '' AS routed
    FROM numbers({offset}, {count}))"""


def _prices(which: str, model: str) -> str:
    """The nano-USD price per token of `model` (an index expression); `which` is 'in' or 'out'."""
    column = 3 if which == "in" else 4
    prices = _array(tuple(m[column] for m in MODELS))
    names = _array(tuple(m[0] for m in MODELS))
    return f"{prices}[indexOf({names}, {model})]"


def _stage_two(first: str) -> str:
    """Models, tokens and prices in integer nano-dollars."""
    names = _array(tuple(m[0] for m in MODELS))
    targets = _array(tuple(m[1] for m in MODELS))
    provider_of = _array(tuple(m[2] for m in MODELS))
    worked = "status IN ('ok', 'cache_hit', 'coalesced', 'client_cancelled')"
    return f"""SELECT *, {_prices('in', 'requested_model')} AS req_in, {_prices('out', 'requested_model')} AS req_out,
        {_prices('in', 'served_model')} AS srv_in, {_prices('out', 'served_model')} AS srv_out,
        toUInt32(if({worked}, 40 + floor(6000 * pow({_u(7)}, 3)), 0)) AS prompt_tokens,
        toUInt32(if({worked} AND endpoint != 'embeddings', 5 + floor(1500 * pow({_u(8)}, 2)), 0))
            AS completion_tokens,
        {provider_of}[model_idx] AS base_provider
    FROM (SELECT *, {names}[model_idx] AS requested_model,
        if(routed, {targets}[model_idx], requested_model) AS served_model FROM ({first}))"""


def _money(nanos: str) -> str:
    return f"toDecimal64({nanos}, 0) * toDecimal64('0.000000001', 9)"


def _stage_three(second: str) -> str:
    """Cost, baseline and savings as docs/ledger.md defines them."""
    served = "(prompt_tokens * srv_in + completion_tokens * srv_out)"
    requested = "(prompt_tokens * req_in + completion_tokens * req_out)"
    kind = f"""multiIf(status = 'cache_hit', 'cache', status = 'coalesced', 'coalesce', routed, 'route',
        status = 'ok' AND {_u(9)} < 0.02, 'batch', '')"""
    cost = f"""multiIf(srv_in < 0 OR status = 'gateway_crash', NULL,
        savings_kind IN ('cache', 'coalesce'), toDecimal64(0, 9),
        savings_kind = 'batch', {_money(f'intDiv({served}, 2)')}, {_money(served)})"""
    baseline = f"if(req_in < 0 OR status = 'gateway_crash', NULL, {_money(requested)})"
    return f"""SELECT *, {kind} AS savings_kind, {cost} AS cost, {baseline} AS baseline
    FROM ({second})"""


def _tags() -> str:
    teams, features = _array(TEAMS), _array(FEATURES)
    return f"""arrayFilter(t -> t != '', [
        if({_u(10)} < 0.7, concat('team:', {teams}[1 + cityHash64(number, 11) % {len(TEAMS)}]), ''),
        if({_u(12)} < 0.5, if({_u(13)} < 0.85, 'env:prod', 'env:staging'), ''),
        if({_u(14)} < 0.25, concat('feature:', {features}[1 + cityHash64(number, 15) % {len(FEATURES)}]), '')])"""


def _latency() -> str:
    """Log-normal-ish latency in ms: a sum of uniforms stands in for a normal variate."""
    normal = f"({_u(16)} + {_u(17)} + {_u(18)} + {_u(19)} - 2.0) * 1.7"
    return f"if(status = 'cache_hit', 2 + 6 * {_u(20)}, exp(log(650) + {normal}))"


def _who_and_what() -> str:
    """Identity, routing and outcome columns."""
    tenant_hash = "lower(hex(MD5(toString(tenant_idx))))"
    stream = f"endpoint IN ('chat/completions', 'responses') AND {_u(21)} < 0.55"
    return f"""concat('req_', lower(hex(cityHash64(number, 99))), lower(hex(cityHash64(number, 98)))) AS request_id,
        {tenant_hash} AS tenant_id, concat('tenant-', toString(tenant_idx)) AS tenant_name,
        concat('key_', substring({tenant_hash}, 1, 10), '_', toString(cityHash64(number, 22) % (1 + tenant_idx % 12)))
            AS key_id,
        endpoint, requested_model, served_model,
        if(base_provider = 'openai' AND {_u(23)} < 0.15, 'azure', base_provider) AS provider,
        status, {_HTTP} AS http_status, {_ERROR_CODE} AS error_code, {stream} AS is_stream, is_stream AS stream,
        multiIf(status = 'cache_hit', 'hit', status = 'coalesced', 'coalesced', {_u(24)} < 0.4, 'miss', 'bypass')
            AS cache_outcome,
        if(savings_kind = '', '', concat('pol-', savings_kind)) AS policy_id,
        toUInt32(savings_kind != '') AS policy_version"""


def _measures() -> str:
    """Times, tokens, money and tags."""
    return f"""received_at, fromUnixTimestamp64Micro(toInt64(toUnixTimestamp64Micro(received_at) + latency_ms * 1000),
            'UTC') AS finished_at,
        if(is_stream AND http_status = 200, received_at + toIntervalMicrosecond(toInt64(ttft * 1000)), NULL)
            AS first_byte_at,
        prompt_tokens, completion_tokens,
        toUInt32(if(provider = 'anthropic', prompt_tokens * 0.3 * {_u(25)}, 0)) AS cached_prompt_tokens,
        0 AS cache_write_tokens,
        status = 'client_cancelled' OR (status = 'ok' AND {_u(26)} < 0.03) AS tokens_estimated,
        cost AS cost_usd, baseline AS baseline_cost_usd,
        ifNull(baseline, toDecimal64(0, 9)) - ifNull(cost, ifNull(baseline, toDecimal64(0, 9))) AS savings_usd,
        savings_kind, '' AS reused_request_id, '2026-11-01' AS price_version,
        {_latency()} AS latency_ms, latency_ms * (0.1 + 0.3 * {_u(27)}) AS ttft,
        if(is_stream AND http_status = 200, ttft, NULL) AS ttft_ms,
        toUInt8(if(status IN ('cache_hit', 'coalesced', 'rate_limited', 'auth_error'), 0, 1)) AS upstream_attempts,
        lower(hex(cityHash64(number % 3000000, 97))) AS request_hash,
        toUInt32(prompt_tokens * 4) AS prompt_chars, {_tags()} AS tags"""


def _rows(start_us: int, span_us: int, count: int, offset: int = 0) -> str:
    """The SELECT producing `count` rows of llm_calls (numbers from `offset` on), columns by name."""
    third = _stage_three(_stage_two(_stage_one(start_us, span_us, count, offset)))
    return f"SELECT {_who_and_what()}, {_measures()} FROM ({third})"


def load_sql(columns: tuple[str, ...], start: datetime, end: datetime, count: int) -> str:
    """The INSERT statement that fills llm_calls with `count` rows received in [start, end)."""
    start_us = int(start.timestamp()) * 1_000_000
    span_us = int((end - start).total_seconds()) * 1_000_000
    names = ", ".join(columns)
    return f"INSERT INTO llm_calls ({names}) SELECT {names} FROM ({_rows(start_us, span_us, count)})"


def batch_sql(columns: tuple[str, ...], start: datetime, end: datetime, count: int, offset: int) -> str:
    """A SELECT of `count` rows (from row number `offset`) in the table's column order, for JSONEachRow output."""
    start_us = int(start.timestamp()) * 1_000_000
    span_us = int((end - start).total_seconds()) * 1_000_000
    return f"SELECT {', '.join(columns)} FROM ({_rows(start_us, span_us, count, offset)})"
