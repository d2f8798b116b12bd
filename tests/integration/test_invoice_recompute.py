"""Finance's check, end to end through the `netra` command: export a month with `netra ledger export`, recompute
the invoice from the formulas in docs/invoices.md with code of its own (nothing from core.invoices), and match the
CLI's invoice to the cent. Then issue it as CSV and PDF, list it and mark it paid.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.invoice_rows import ledger_row, month_rows

REPO = Path(__file__).resolve().parents[2]
NOV = datetime(2024, 11, 1, tzinfo=UTC)  # long past, so the month can be issued whatever today is
RATE = Decimal("0.15")
CENT = Decimal("0.01")
WRITER = """
import json, sys
from core.chmigrate import upgrade_clickhouse
from core.clickhouse import ClickHouseStore
from core.settings import Settings
store = ClickHouseStore.open(Settings())
upgrade_clickhouse(store)
store.insert_rows(json.load(sys.stdin), "recompute-test")
store.close()
"""


def netra(env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None) -> str:
    argv = [sys.executable, "-m", "cli.main", *args] if args[0] != "-c" else [sys.executable, *args]
    done = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


# --- the formulas of docs/invoices.md, written again here ------------------------------------------------------


def half_even(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def largest_remainder(values: Sequence[Decimal], total: Decimal) -> list[Decimal]:
    floors = [(v * 100).to_integral_value(rounding=ROUND_FLOOR) for v in values]
    missing = int(total * 100 - sum(floors))
    ranked = sorted(range(len(values)), key=lambda i: (-(values[i] * 100 - floors[i]), i))
    return [(floors[i] + (1 if i in ranked[:missing] else 0)) / 100 for i in range(len(values))]


def recompute(rows: list[dict[str, str]], rate: Decimal) -> dict[str, Any]:
    sums: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        group = sums.setdefault((row["savings_kind"], row["requested_model"]), [0, Decimal(0), Decimal(0), Decimal(0)])
        group[0] += 1
        group[1] += Decimal(row["baseline_cost_usd"] or "0")
        group[2] += Decimal(row["cost_usd"] or "0")
        group[3] += Decimal(row["savings_usd"])
    keys = sorted(sums)
    totals = [half_even(sum((sums[k][i] for k in keys), Decimal(0))) for i in (1, 2, 3)]
    baselines = largest_remainder([sums[k][1] for k in keys], totals[0])
    actuals = largest_remainder([sums[k][2] for k in keys], totals[1])
    kinds = sorted({k[0] for k in keys})
    by_kind = dict(zip(kinds, largest_remainder([sum(sums[k][3] for k in keys if k[0] == kind) for kind in kinds],
                                                totals[2]), strict=True))
    savings: dict[tuple[str, str], Decimal] = {}
    for kind in kinds:
        members = [k for k in keys if k[0] == kind]
        savings.update(zip(members, largest_remainder([sums[k][3] for k in members], by_kind[kind]), strict=True))
    fee = half_even(max(totals[2], Decimal(0)) * rate)
    lines = [(k[0], k[1], sums[k][0], baselines[i], actuals[i], savings[k]) for i, k in enumerate(keys)]
    return {"totals": totals, "by_kind": by_kind, "fee": fee, "net": totals[2] - fee, "lines": lines,
            "calls": len(rows), "versions": sorted({r["price_version"] for r in rows} - {""})}


# --- the test ---------------------------------------------------------------------------------------------------


def write_rows(env: dict[str, str], cwd: Path, tenant_id: str) -> None:
    rng = random.Random(2024)
    rows = month_rows(rng, tenant_id, "acme", NOV, 600)
    rows += month_rows(rng, tenant_id, "acme", NOV - timedelta(days=31), 20, prefix="oct")
    rows += month_rows(rng, "ten_other", "other", NOV, 30, prefix="other")
    edge = datetime(2024, 12, 1, tzinfo=UTC)
    rows.append(ledger_row("last-in", tenant_id, "acme", edge - timedelta(microseconds=1), kind="cache",
                           baseline="0.123456789", cost="0"))
    rows.append(ledger_row("first-out", tenant_id, "acme", edge, kind="cache", baseline="5", cost="0"))
    netra(env, cwd, "-c", WRITER, stdin=json.dumps(rows))


def check_matches(doc: dict[str, Any], expected: dict[str, Any]) -> None:
    assert [Decimal(doc[f]) for f in ("baseline_cost", "actual_cost", "savings")] == expected["totals"]
    assert (Decimal(doc["fee"]), Decimal(doc["net_benefit"])) == (expected["fee"], expected["net"])
    assert doc["calls"] == expected["calls"] and doc["price_versions"] == expected["versions"]
    shown = [(li["kind"], li["model"], li["calls"], Decimal(li["baseline"]), Decimal(li["actual"]),
              Decimal(li["savings"])) for li in doc["lines"]]
    assert shown == expected["lines"]
    assert {k: Decimal(v) for k, v in doc["savings_by_kind"].items()} == {
        k: v for k, v in expected["by_kind"].items() if k}
    assert set(doc["savings_by_kind"]) == {"cache", "coalesce", "route", "batch"}


def check_csv_adds_up(text: str, number: str) -> None:
    rows = list(csv.DictReader(io.StringIO(text)))
    lines = [r for r in rows if r["record"] == "line"]
    (total,) = [r for r in rows if r["record"] == "total"]
    assert {r["number"] for r in rows} == {number}
    for column in ("baseline", "actual", "savings"):
        assert sum(Decimal(r[column]) for r in lines) == Decimal(total[column])
    assert sum(int(r["calls"]) for r in lines) == int(total["calls"])


@pytest.mark.slow  # eight `netra` processes, each starting the embedded ClickHouse
def test_cli_invoice_matches_a_recomputation_from_the_export_to_the_cent(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETRA_")}
    env.update(PYTHONPATH=str(REPO), NETRA_DATA_DIR=str(tmp_path / "data"))
    netra(env, tmp_path, "tenants", "create", "acme", "--tier", "enterprise")
    netra(env, tmp_path, "invoices", "set-fee-rate", "--tenant", "acme", str(RATE))
    (tenant,) = json.loads(netra(env, tmp_path, "tenants", "list", "--json"))
    write_rows(env, tmp_path, tenant["id"])
    export = netra(env, tmp_path, "ledger", "export", "--format", "csv", "--tenant", "acme",
                   "--since", "2024-11-01", "--until", "2024-12-01")
    rows = list(csv.DictReader(io.StringIO(export)))
    assert len(rows) == 601 and {r["savings_kind"] for r in rows} == {"", "cache", "coalesce", "route", "batch"}
    assert "last-in" in {r["request_id"] for r in rows} and any(not r["cost_usd"] for r in rows)
    expected = recompute(rows, RATE)
    draft = json.loads(netra(env, tmp_path, "invoices", "generate", "--tenant", "acme", "--month", "2024-11"))
    assert draft["status"] == "draft" and draft["fee_rate"] == "0.15" and draft["currency"] == "USD"
    check_matches(draft, expected)
    out = tmp_path / "invoice.csv"
    netra(env, tmp_path, "invoices", "generate", "--tenant", "acme", "--month", "2024-11", "--issue",
          "--format", "csv", "--output", str(out))
    number = f"NET-{datetime.now(UTC).year}-000001"
    check_csv_adds_up(out.read_text(encoding="utf-8"), number)
    issued = json.loads(netra(env, tmp_path, "invoices", "generate", "--tenant", "acme", "--month", "2024-11"))
    assert (issued["number"], issued["status"]) == (number, "issued")
    check_matches(issued, expected)
    pdf = tmp_path / "invoice.pdf"
    netra(env, tmp_path, "invoices", "generate", "--tenant", "acme", "--month", "2024-11", "--format", "pdf",
          "--output", str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF-") and len(pdf.read_bytes()) > 2000
    assert "is paid" in netra(env, tmp_path, "invoices", "mark-paid", number)
    (listed,) = json.loads(netra(env, tmp_path, "invoices", "list", "--json", "--tenant", "acme"))
    assert (listed["number"], listed["status"], listed["savings"]) == (number, "paid", issued["savings"])
