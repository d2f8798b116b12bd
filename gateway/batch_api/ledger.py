"""Ledger rows of a finished batch: one per line of its output (and error) file, at batch prices.

A batch line is a call the provider made long after the client's request, so its row has no start record: it is
written with `finish` alone, which appends the finished row to the spill like any other (a start record exists only
so that a call cut short by a crash still gets a row; a batch line is already complete when Netra learns of it).
Its request_id and received_at are derived from the batch and the line alone, so writing the file's rows again
(the process died before it noted them as written) repeats rows that ClickHouse's ReplacingMergeTree deduplicates.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from core.callrow import LedgerRow
from core.metrics import GatewayMetrics
from core.prices import PriceTable, batch_money
from core.usage import Usage
from gateway.providers.openai_stream import usage_from_openai

log = logging.getLogger("netra.ledger")
SAVINGS_KIND = "batch"


@dataclass(frozen=True, slots=True)
class BatchRun:
    """What every row of one batch shares: who ran it, where, and when (epoch microseconds)."""

    batch_id: str
    tenant_id: str
    tenant_name: str
    key_id: str
    provider: str
    endpoint: str
    received_us: int
    finished_us: int
    # custom_id -> [endpoint, requested model, served model], from the input file as uploaded
    lines: dict[str, list[str]]


def request_id_of(batch_id: str, custom_id: str) -> str:
    """The ledger's request id of one batch line: the same every time the line is read."""
    digest = hashlib.blake2b(f"{batch_id}\0{custom_id}".encode(), digest_size=16).hexdigest()
    return f"batchreq_{digest}"


def parse_lines(content: bytes) -> list[dict[str, Any]]:
    """The JSON objects of an output or error file; a line that is not one is skipped (and logged)."""
    parsed: list[dict[str, Any]] = []
    for raw in content.splitlines():
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            line = None
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
            parsed.append(line)
        else:
            log.warning("batch output line is not a result object; not ledgered")
    return parsed


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _outcome(line: dict[str, Any]) -> tuple[str, int, str, dict[str, Any]]:
    """(status, http status, error code, response body) of one result line."""
    response = _object(line.get("response"))
    body = _object(response.get("body"))
    raw_status = response.get("status_code")
    status = raw_status if isinstance(raw_status, int) else 0
    error = line.get("error") if isinstance(line.get("error"), dict) else body.get("error")
    code = str(error.get("code") or "batch_error") if isinstance(error, dict) else ""
    if 200 <= status < 300 and not code:
        return "ok", status, "", body
    if 400 <= status < 500:
        return "upstream_rejected", status, code or "upstream_rejected", body
    return "upstream_error", status or 502, code or "upstream_error", body


def _money(ok: bool, usage: Usage | None, price_model: tuple[str, str], prices: PriceTable) -> tuple[
    str | None, str | None, str, str
]:
    """(cost at batch prices, baseline at synchronous prices, savings, savings kind)."""
    if usage is None or usage.total_tokens == 0:
        # Nothing to bill: a failed line costs nothing; a served one without usage costs what nobody can say.
        return ("0", "0", "0", "") if not ok else (None, None, "0", "")
    cost, baseline, savings = batch_money(usage, prices.call_price(*price_model))
    return cost, baseline, savings, "" if cost is None else SAVINGS_KIND


def line_row(line: dict[str, Any], run: BatchRun, prices: PriceTable, metrics: GatewayMetrics) -> LedgerRow:
    """The ledger row of one result line."""
    custom_id = str(line["custom_id"])
    endpoint, requested, served = run.lines.get(custom_id) or [run.endpoint, "", ""]
    status, http_status, error_code, body = _outcome(line)
    usage = usage_from_openai(body.get("usage"))
    served = served or str(body.get("model") or "")
    cost, baseline, savings, kind = _money(status == "ok", usage, (served, requested), prices)
    if cost is None and status == "ok":
        metrics.unpriced.labels(served).inc()
        log.warning("no price for model; batch line's cost logged as unknown", extra={"model": served})
    usage = usage or Usage()
    return LedgerRow(
        request_id=request_id_of(run.batch_id, custom_id), received_at=run.received_us, first_byte_at=None,
        finished_at=run.finished_us, tenant_id=run.tenant_id, tenant_name=run.tenant_name, key_id=run.key_id,
        endpoint=endpoint, requested_model=requested, served_model=served, provider=run.provider, status=status,
        http_status=http_status, error_code=error_code, stream=False, cache_outcome="bypass", policy_id="",
        policy_version=0, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        cached_prompt_tokens=usage.cached_tokens, cache_write_tokens=usage.cache_write_tokens,
        tokens_estimated=False, cost_usd=cost, baseline_cost_usd=baseline, savings_usd=savings, savings_kind=kind,
        reused_request_id="", price_version=prices.version,
        latency_ms=round((run.finished_us - run.received_us) / 1000.0, 3), ttft_ms=None, upstream_attempts=1,
        request_hash="", prompt_chars=0, tags=[],
    )
