"""The ledger in chDB: migrations, rollups against raw sums, insert dedup through the views, reports, export."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.callrow import COLUMN_NAMES
from core.chmigrate import (
    CLICKHOUSE_MIGRATIONS,
    applied_versions,
    migration_files,
    split_statements,
    upgrade_clickhouse,
)
from core.clickhouse import ClickHouseStore
from core.ledger_export import export_rows
from core.ledger_report import (
    ROLLUP_SUMS,
    SAVINGS_KINDS,
    daily_rollup,
    format_summary,
    from_micros,
    hourly_rollup,
    parse_when,
    summary,
    to_micros,
)

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 10, 30, 21, 0, tzinfo=UTC)  # three days from here cross the October/November partitions
TENANTS = (("t-acme", "acme"), ("t-globex", "globex"), ("t-initech", "initech"))
MODELS = (  # (requested, served, provider)
    ("gpt-4o", "gpt-4o", "openai"),
    ("gpt-4o", "gpt-4o-mini", "openai"),
    ("claude-sonnet", "claude-sonnet", "anthropic"),
)
OUTCOMES = (  # (status, http_status, cache_outcome, savings_kind)
    ("ok", 200, "miss", ""),
    ("ok", 200, "miss", "route"),
    ("cache_hit", 200, "hit", "cache"),
    ("coalesced", 200, "coalesced", "coalesce"),
    ("ok", 200, "bypass", "batch"),
    ("upstream_error", 502, "miss", ""),
    ("rate_limited", 429, "bypass", ""),
    ("client_cancelled", 499, "miss", ""),
    ("gateway_crash", 0, "", ""),
)
TAGS: tuple[list[str], ...] = ([], ["team:search"], ["team:a,b", 'say "hi"'])


def money(rng: random.Random, cents: int = 5) -> str:
    """A random amount with nine decimals, as the decimal string a spilled row carries."""
    return f"{Decimal(rng.randrange(0, cents * 10**7)).scaleb(-9):f}"


def make_row(i: int, rng: random.Random, **overrides: Any) -> dict[str, Any]:
    """One ledger row as core/callrow.py documents it: int microseconds, money as decimal strings or None."""
    tenant_id, tenant_name = rng.choice(TENANTS)
    requested, served, provider = rng.choice(MODELS)
    status, http_status, cache_outcome, kind = rng.choice(OUTCOMES)
    received = to_micros(T0) + rng.randrange(0, 3 * 86_400_000_000)
    savings = money(rng) if kind else "0"
    cost = None if status == "gateway_crash" or rng.random() < 0.1 else money(rng)
    baseline = None if cost is None else f"{Decimal(cost) + Decimal(savings):f}"
    row = {
        "request_id": f"req-{i:05d}",
        "received_at": received,
        "first_byte_at": None if http_status != 200 else received + 40_000,
        "finished_at": received + 90_000,
        "tenant_id": tenant_id,
        "tenant_name": tenant_name,
        "key_id": f"key-{tenant_id}",
        "endpoint": "/v1/chat/completions",
        "requested_model": requested,
        "served_model": served,
        "provider": provider,
        "status": status,
        "http_status": http_status,
        "error_code": "" if http_status == 200 else status,
        "stream": rng.random() < 0.5,
        "cache_outcome": cache_outcome,
        "policy_id": f"pol-{kind}" if kind else "",
        "policy_version": 1 if kind else 0,
        "prompt_tokens": rng.randrange(0, 5000),
        "completion_tokens": rng.randrange(0, 2000),
        "cached_prompt_tokens": rng.randrange(0, 500),
        "cache_write_tokens": rng.randrange(0, 100),
        "tokens_estimated": rng.random() < 0.2,
        "cost_usd": cost,
        "baseline_cost_usd": baseline,
        "savings_usd": savings,
        "savings_kind": kind,
        "price_version": "2026-10",
        "latency_ms": rng.uniform(5, 3000),
        "ttft_ms": None if http_status != 200 else rng.uniform(5, 500),
        "upstream_attempts": rng.randrange(0, 3),
        "request_hash": f"h{i}",
        "prompt_chars": rng.randrange(0, 20000),
        "tags": list(rng.choice(TAGS)),
    }
    row.update(overrides)
    return row


def make_batches(count: int = 5, size: int = 60, seed: int = 7) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    return [[make_row(b * size + i, rng) for i in range(size)] for b in range(count)]


def insert_batches(store: ClickHouseStore, batches: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    for number, batch in enumerate(batches):
        store.insert_rows(batch, f"batch-{number}")
    return [row for batch in batches for row in batch]


def dec(value: str | None) -> Decimal:
    return Decimal(0) if value is None else Decimal(value)


def is_error(row: dict[str, Any]) -> bool:
    return row["http_status"] >= 400 or row["status"] in ("gateway_crash", "client_cancelled")


def expected_sums(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a rollup row must hold for these raw rows, computed in Python."""
    out: dict[str, Any] = {
        "requests": len(rows),
        "errors": sum(is_error(r) for r in rows),
        "cache_hits": sum(r["cache_outcome"] == "hit" for r in rows),
        "unpriced_requests": sum(r["cost_usd"] is None for r in rows),
        "cost_usd": sum((dec(r["cost_usd"]) for r in rows), Decimal(0)),
        "baseline_cost_usd": sum((dec(r["baseline_cost_usd"]) for r in rows), Decimal(0)),
        "savings_usd": sum((dec(r["savings_usd"]) for r in rows), Decimal(0)),
    }
    for name in ("prompt_tokens", "completion_tokens", "cached_prompt_tokens", "cache_write_tokens"):
        out[name] = sum(r[name] for r in rows)
    for kind in SAVINGS_KINDS:
        out[f"savings_{kind}_usd"] = sum((dec(r["savings_usd"]) for r in rows if r["savings_kind"] == kind), Decimal(0))
    return out


def grouped(rows: Iterable[dict[str, Any]], key: Callable[[dict[str, Any]], tuple[Any, ...]]) -> dict[Any, Any]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return {k: expected_sums(v) for k, v in groups.items()}


def hour_key(row: dict[str, Any]) -> tuple[Any, ...]:
    hour = from_micros(row["received_at"]).replace(minute=0, second=0, microsecond=0)
    return (row["tenant_id"], hour, row["served_model"], row["provider"], row["requested_model"])


def day_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["tenant_id"], from_micros(row["received_at"]).date())


def rollup_sums(items: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[Any, Any]:
    return {tuple(item[k] for k in keys): {name: item[name] for name in ROLLUP_SUMS} for item in items}


HOUR_KEYS = ("tenant_id", "hour", "served_model", "provider", "requested_model")


def snapshot(store: ClickHouseStore) -> dict[str, Any]:
    return {
        "plain": store.query("SELECT count() FROM llm_calls")[0][0],
        "final": store.query("SELECT count() FROM llm_calls FINAL")[0][0],
        "hourly": hourly_rollup(store),
        "daily": daily_rollup(store),
    }


# --- migrations -----------------------------------------------------------------------------------------------


def test_migrations_are_idempotent_and_recorded(clickhouse_store: ClickHouseStore) -> None:
    assert upgrade_clickhouse(clickhouse_store) == []
    versions = applied_versions(clickhouse_store)
    assert versions == {path.stem for path in migration_files()}
    assert {"0001_llm_calls", "0002_rollups"} <= versions
    # The DDL itself is re-runnable (a crash between DDL and recording the version must not wedge startup).
    for statement in split_statements((CLICKHOUSE_MIGRATIONS / "0002_rollups.sql").read_text(encoding="utf-8")):
        clickhouse_store.command(statement)
    tables = dict(clickhouse_store.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase()"))
    assert tables["llm_calls_hourly"] == tables["llm_calls_daily"] == "AggregatingMergeTree"
    assert tables["llm_calls_hourly_mv"] == tables["llm_calls_daily_mv"] == "MaterializedView"


# --- rollups and dedup ----------------------------------------------------------------------------------------


def test_rollups_equal_raw_sums(clickhouse_store: ClickHouseStore) -> None:
    rows = insert_batches(clickhouse_store, make_batches())
    assert len({r["tenant_id"] for r in rows}) == 3 and len({r["savings_kind"] for r in rows}) == 5
    assert any(r["cost_usd"] is None for r in rows)
    hourly = hourly_rollup(clickhouse_store)
    assert rollup_sums(hourly, HOUR_KEYS) == grouped(rows, hour_key)
    assert rollup_sums(daily_rollup(clickhouse_store), ("tenant_id", "day")) == grouped(rows, day_key)
    assert {item["hour"].month for item in hourly} == {10, 11}
    names = {tenant_id: name for tenant_id, name in TENANTS}
    assert all(item["tenant_name"] == names[item["tenant_id"]] for item in hourly)


def test_hourly_percentiles_match_raw_quantiles(clickhouse_store: ClickHouseStore) -> None:
    insert_batches(clickhouse_store, make_batches())
    raw = clickhouse_store.query(
        "SELECT tenant_id, toStartOfHour(toDateTime(received_at, 'UTC')) AS h, served_model, provider, "
        "requested_model, toUnixTimestamp(h), quantiles(0.5, 0.9, 0.99)(latency_ms), "
        "quantiles(0.5, 0.9, 0.99)(ttft_ms) FROM llm_calls FINAL "
        "GROUP BY tenant_id, h, served_model, provider, requested_model"
    )
    expected = {
        (t, datetime.fromtimestamp(h, tz=UTC), s, p, r): [None if math.isnan(v) else v for v in lat + ttft]
        for t, _, s, p, r, h, lat, ttft in raw
    }
    names = [f"{m}_{q}" for m in ("latency_ms", "ttft_ms") for q in ("p50", "p90", "p99")]
    got = {tuple(item[k] for k in HOUR_KEYS): [item[n] for n in names] for item in hourly_rollup(clickhouse_store)}
    assert got.keys() == expected.keys()
    for key, values in got.items():
        want = expected[key]
        assert [v is None for v in values] == [w is None for w in want]
        assert [v for v in values if v is not None] == pytest.approx([w for w in want if w is not None], rel=1e-9)


def test_rollup_tenant_filter(clickhouse_store: ClickHouseStore) -> None:
    rows = insert_batches(clickhouse_store, make_batches())
    acme = [r for r in rows if r["tenant_name"] == "acme"]
    hourly = hourly_rollup(clickhouse_store, "acme")
    daily = daily_rollup(clickhouse_store, tenant="acme")
    assert {item["tenant_name"] for item in hourly + daily} == {"acme"}
    assert sum(item["requests"] for item in hourly) == sum(item["requests"] for item in daily) == len(acme)
    assert sum((item["cost_usd"] for item in daily), Decimal(0)) == expected_sums(acme)["cost_usd"]


def test_resent_block_with_same_token_changes_nothing(clickhouse_store: ClickHouseStore) -> None:
    batches = make_batches()
    insert_batches(clickhouse_store, batches)
    before = snapshot(clickhouse_store)
    clickhouse_store.insert_rows(batches[2], "batch-2")
    clickhouse_store.insert_rows(batches[4], "batch-4")
    assert snapshot(clickhouse_store) == before
    assert before["plain"] == before["final"] == 300


def test_resent_rows_with_new_token_collapse_in_final_only(clickhouse_store: ClickHouseStore) -> None:
    """Pins the documented limit: rollups count inserted blocks, so only FINAL on llm_calls is exact."""
    batches = make_batches()
    insert_batches(clickhouse_store, batches)
    clickhouse_store.insert_rows(batches[0], "a-different-token")
    after = snapshot(clickhouse_store)
    assert after["final"] == 300  # the plain count is 360 until a background merge collapses the copies
    assert sum(item["requests"] for item in after["daily"]) == 360
    assert summary(clickhouse_store, tenant=None, since=None, until=None).requests == 300


# --- summary --------------------------------------------------------------------------------------------------


def test_summary_totals_add_up(clickhouse_store: ClickHouseStore) -> None:
    rows = insert_batches(clickhouse_store, make_batches())
    report = summary(clickhouse_store, tenant=None, since=None, until=None)
    want = expected_sums(rows)
    assert report.requests == 300 == sum(report.by_status.values()) == sum(report.by_http_status.values())
    assert report.by_http_status[0] == sum(r["status"] == "gateway_crash" for r in rows)
    assert report.by_status["cache_hit"] == sum(r["status"] == "cache_hit" for r in rows)
    for name in ("prompt_tokens", "completion_tokens", "cached_prompt_tokens", "cache_write_tokens"):
        assert getattr(report, name) == want[name]
    assert (report.cost_usd, report.baseline_cost_usd, report.savings_usd) == (
        want["cost_usd"],
        want["baseline_cost_usd"],
        want["savings_usd"],
    )
    assert all(isinstance(v, Decimal) for v in (report.cost_usd, report.baseline_cost_usd, report.savings_usd))
    assert report.savings_by_kind == {k: want[f"savings_{k}_usd"] for k in SAVINGS_KINDS}
    assert sum(report.savings_by_kind.values(), Decimal(0)) == report.savings_usd
    assert report.unpriced_requests == want["unpriced_requests"]
    assert report.estimated_token_rows == sum(r["tokens_estimated"] for r in rows)


def test_summary_filters_by_tenant(clickhouse_store: ClickHouseStore) -> None:
    rows = insert_batches(clickhouse_store, make_batches())
    for _, name in TENANTS:
        mine = [r for r in rows if r["tenant_name"] == name]
        report = summary(clickhouse_store, tenant=name, since=None, until=None)
        assert report.requests == len(mine)
        assert report.cost_usd == expected_sums(mine)["cost_usd"]
    assert summary(clickhouse_store, tenant="nobody", since=None, until=None).requests == 0


def test_summary_window_is_since_inclusive_until_exclusive(clickhouse_store: ClickHouseStore) -> None:
    rng = random.Random(1)
    times = [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    edge = [
        make_row(900 + n, rng, tenant_id="t-edge", tenant_name="edge", received_at=to_micros(t), cost_usd="0.25")
        for n, t in enumerate(times)
    ]
    clickhouse_store.insert_rows(edge, "edge")

    def count(since: datetime | None, until: datetime | None) -> int:
        return summary(clickhouse_store, tenant="edge", since=since, until=until).requests

    assert count(times[1], times[2]) == 1
    assert count(times[1], None) == 2
    assert count(None, times[1]) == 1
    assert count(times[1] - timedelta(microseconds=1), times[2] + timedelta(microseconds=1)) == 2
    report = summary(clickhouse_store, tenant="edge", since=times[0], until=times[2])
    assert report.cost_usd == Decimal("0.50")


def test_summary_to_dict_and_text(clickhouse_store: ClickHouseStore) -> None:
    insert_batches(clickhouse_store, make_batches(count=1))
    report = summary(clickhouse_store, tenant="acme", since=T0, until=None)
    doc = json.loads(json.dumps(report.to_dict()))
    assert Decimal(doc["cost_usd"]) == report.cost_usd and doc["since"] == "2026-10-30T21:00:00Z"
    assert {k: Decimal(v) for k, v in doc["savings_by_kind"].items()} == report.savings_by_kind
    assert sum(doc["by_http_status"].values()) == doc["requests"]
    text = format_summary(report)
    assert "TOTAL requests" in text and "acme" in text
    cost_line = next(line for line in text.splitlines() if "cost (paid upstream)" in line)
    assert cost_line.split()[-1] == "$" + f"{report.cost_usd.quantize(Decimal('0.000001')):,f}"


# --- export ---------------------------------------------------------------------------------------------------


def originals_by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["request_id"]: row for row in rows}


def iso_micros(text: str) -> int:
    assert text.endswith("Z")
    return to_micros(datetime.fromisoformat(text))


def test_export_csv(clickhouse_store: ClickHouseStore) -> None:
    rows = insert_batches(clickhouse_store, make_batches())
    lines: list[str] = []
    assert export_rows(clickhouse_store, tenant=None, since=None, until=None, fmt="csv", write=lines.append) == 300
    assert len(lines) == 301 and all(line.endswith("\r\n") for line in lines)
    parsed = list(csv.reader(io.StringIO("".join(lines), newline="")))
    assert tuple(parsed[0]) == COLUMN_NAMES and len(parsed) == 301
    by_id = originals_by_id(rows)
    records = [dict(zip(COLUMN_NAMES, values, strict=True)) for values in parsed[1:]]
    assert [iso_micros(r["received_at"]) for r in records] == sorted(r["received_at"] for r in rows)
    for record in records:
        original = by_id[record["request_id"]]
        for name in ("cost_usd", "baseline_cost_usd", "savings_usd"):
            assert (record[name] == "") if original[name] is None else Decimal(record[name]) == Decimal(original[name])
        assert json.loads(record["tags"]) == original["tags"]
        assert int(record["prompt_tokens"]) == original["prompt_tokens"]
        assert record["stream"] == ("true" if original["stream"] else "false")


def test_export_jsonl(clickhouse_store: ClickHouseStore) -> None:
    rows = insert_batches(clickhouse_store, make_batches())
    lines: list[str] = []
    count = export_rows(clickhouse_store, tenant="globex", since=None, until=None, fmt="jsonl", write=lines.append)
    globex = [r for r in rows if r["tenant_name"] == "globex"]
    assert count == len(lines) == len(globex) > 0
    by_id = originals_by_id(rows)
    for line in lines:
        doc = json.loads(line)
        assert tuple(doc) == COLUMN_NAMES
        original = by_id[doc["request_id"]]
        assert iso_micros(doc["received_at"]) == original["received_at"]
        assert (
            doc["first_byte_at"] is None
            if original["first_byte_at"] is None
            else (iso_micros(doc["first_byte_at"]) == original["first_byte_at"])
        )
        for name in ("cost_usd", "baseline_cost_usd", "savings_usd"):
            assert doc[name] is None if original[name] is None else Decimal(doc[name]) == Decimal(original[name])
            assert doc[name] is None or isinstance(doc[name], str)
        assert doc["tags"] == original["tags"] and doc["stream"] is original["stream"]


def test_export_window_and_bad_format(clickhouse_store: ClickHouseStore) -> None:
    rows = insert_batches(clickhouse_store, make_batches())
    since, until = T0 + timedelta(days=1), T0 + timedelta(days=2)
    inside = [r for r in rows if to_micros(since) <= r["received_at"] < to_micros(until)]
    lines: list[str] = []
    assert export_rows(clickhouse_store, tenant=None, since=since, until=until, fmt="jsonl", write=lines.append) == len(
        inside
    )
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        export_rows(clickhouse_store, tenant=None, since=None, until=None, fmt="xml", write=lines.append)


# --- parse_when -----------------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 15, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T12:00:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T12:00:00Z", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("2026-11-01T14:00:00+02:00", datetime(2026, 11, 1, 12, tzinfo=UTC)),
        ("7d", NOW - timedelta(days=7)),
        ("24h", NOW - timedelta(hours=24)),
        (" 30m ", NOW - timedelta(minutes=30)),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    parsed = parse_when(text, NOW)
    assert parsed == expected and parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["", "yesterday", "7x", "-7d", "2026-13-01", "d7", "99999999999999d"])
def test_parse_when_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"cannot read .* as a time: use a date"):
        parse_when(text, NOW)


# --- the embedded store's lock --------------------------------------------------------------------------------

HOLDER = """
import sys, time
from core.clickhouse import open_client
client = open_client("chdb://" + sys.argv[1], "holder")  # keep it: a collected client releases the lock
print("ready", flush=True)
time.sleep(120)
"""
CONTENDER = """
import sys
from core.clickhouse import ClickHouseLocked, open_client
try:
    open_client("chdb://" + sys.argv[1], "contender")
except ClickHouseLocked as exc:
    print("LOCKED:", exc)
    sys.exit(0)
print("opened the store twice")
sys.exit(3)
"""


def test_second_process_gets_clear_lock_error(tmp_path: Path) -> None:
    location = tmp_path / "locked-chdb"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", HOLDER, str(location)]
    with subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
            contender = subprocess.run(
                [sys.executable, "-c", CONTENDER, str(location)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        finally:
            holder.kill()
    assert contender.returncode == 0, contender.stdout + contender.stderr
    assert "in use by another process" in contender.stdout and str(location) in contender.stdout
