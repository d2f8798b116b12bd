"""`netra invoices` against a real deployment: calls made through the gateway with the SDK, then invoiced."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from tests.e2e.conftest import Deployment

USER = [{"role": "user", "content": "hi"}]
CENT = Decimal("0.01")


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def test_invoice_commands_while_netra_runs(deployment: Deployment) -> None:
    netra = deployment.netra
    # The running Netra's ledger process answers the read over its socket: a draft while it serves.
    done = netra.cli("invoices", "generate", "--tenant", "acme", "--month", this_month(), check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "draft" and "Traceback" not in done.stderr
    assert json.loads(netra.cli("invoices", "list", "--json").stdout) == []  # no ledger needed to list
    unknown = netra.cli("invoices", "void", "NET-2026-999999", check=False)
    assert unknown.returncode == 1 and "no invoice numbered 'NET-2026-999999'" in unknown.stderr


def test_a_draft_holds_the_calls_the_gateway_logged(deployment: Deployment) -> None:
    client = deployment.client("acme")
    for _ in range(3):
        assert client.chat.completions.create(model="gpt-4o-mini", messages=USER).choices
    assert deployment.netra.stop() == 0  # the ledger is flushed on SIGTERM
    netra, month = deployment.netra, this_month()
    summary = json.loads(
        netra.cli("ledger", "summary", "--tenant", "acme", "--since", f"{month}-01", "--json").stdout
    )
    draft = json.loads(netra.cli("invoices", "generate", "--tenant", "acme", "--month", month).stdout)
    assert draft["status"] == "draft" and draft["calls"] == summary["requests"] >= 3
    pairs = (("actual_cost", "cost_usd"), ("baseline_cost", "baseline_cost_usd"), ("savings", "savings_usd"))
    for ours, theirs in pairs:
        assert Decimal(draft[ours]) == Decimal(summary[theirs]).quantize(CENT, rounding=ROUND_HALF_EVEN)
    assert Decimal(summary["cost_usd"]) > 0 and draft["tier"] == "enterprise" and draft["fee_rate"] == "0.20"
    assert {line["model"] for line in draft["lines"]} == {"gpt-4o-mini"}
