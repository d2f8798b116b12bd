"""REST API: invoices over the ledger in chDB and the relational store (SQLite and PostgreSQL): drafts, issue,
paid, void, files; finance and admin only; every change audited."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from admin.ledger import SharedReader
from core.clickhouse import ClickHouseStore
from core.invoices.document import content_hash
from core.settings import Settings
from tests.integration import admin_api_harness as harness
from tests.integration.admin_api_harness import HOSTILE, Api, Database, running_api
from tests.invoice_rows import ledger_row
from tests.unit.helpers import closed_port

database, sqlite_sessions = harness.database, harness.sqlite_sessions  # the harness's fixtures
NUMBER = "NET-2026-000001"  # the admin harness's clock stands at 2026-12-01 12:00 UTC


@pytest.fixture
async def api(database: Database, clickhouse_store: ClickHouseStore) -> AsyncIterator[Api]:
    """The admin app reading this test's chDB ledger."""
    async with running_api(database, ledger=SharedReader(clickhouse_store)) as running:
        yield running


async def tenant_with_rows(api: Api, store: ClickHouseStore, name: str = "acme") -> str:
    """A tenant (tier early: 20% fee) with October rows saving 0.70 by cache and 0.75 by route."""
    tenant_id: str = (await api.ok("POST", "/api/tenants", json={"name": name, "tier": "early"}, status=201))["id"]
    rows = [
        ledger_row(f"{tenant_id}-1", tenant_id, name, datetime(2026, 10, 3, tzinfo=UTC), kind="cache",
                   baseline="0.400000000", cost="0"),
        ledger_row(f"{tenant_id}-2", tenant_id, name, datetime(2026, 10, 4, tzinfo=UTC), kind="cache",
                   baseline="0.300000001", cost="0"),
        ledger_row(f"{tenant_id}-3", tenant_id, name, datetime(2026, 10, 20, tzinfo=UTC), kind="route",
                   baseline="1.000000000", cost="0.250000000"),
    ]
    store.insert_rows(rows, f"t-{tenant_id}")
    return tenant_id


async def test_draft_issue_show_download_and_pay(api: Api, clickhouse_store: ClickHouseStore) -> None:
    tid = await tenant_with_rows(api, clickhouse_store)
    draft = await api.ok("GET", f"/api/invoices/draft?tenant_id={tid}&month=2026-10", "finance")
    assert (draft["status"], draft["number"], draft["calls"], draft["savings"]) == ("draft", None, 3, "1.45")
    assert (draft["fee"], draft["net_benefit"]) == ("0.29", "1.16")
    issued = await api.ok("POST", "/api/invoices", "finance", json={"tenant_id": tid, "month": "2026-10"})
    assert (issued["number"], issued["status"], issued["savings"]) == (NUMBER, "issued", "1.45")
    assert issued["content_hash"] == content_hash(issued)
    again = await api.ok("POST", "/api/invoices", "admin", json={"tenant_id": tid, "month": "2026-10"})
    assert again == issued  # issuing again returns the invoice in force
    assert await api.ok("GET", f"/api/invoices/{NUMBER}", "finance") == issued
    assert await api.ok("GET", f"/api/invoices/draft?tenant_id={tid}&month=2026-10", "finance") == issued
    listed = await api.ok("GET", f"/api/invoices?tenant_id={tid}", "finance")
    assert [(r["number"], r["status"], r["savings"]) for r in listed["data"]] == [(NUMBER, "issued", "1.45")]
    paid = await api.ok("POST", f"/api/invoices/{NUMBER}/paid", "finance")
    assert (paid["status"], paid["paid_at"]) == ("paid", "2026-12-01T12:00:00Z")
    assert (await api.ok("GET", "/api/invoices?status=issued", "finance"))["data"] == []


async def test_files_in_json_csv_and_pdf(api: Api, clickhouse_store: ClickHouseStore) -> None:
    tid = await tenant_with_rows(api, clickhouse_store, HOSTILE)
    await api.ok("POST", "/api/invoices", "finance", json={"tenant_id": tid, "month": "2026-10"})
    pdf = await api.call("GET", f"/api/invoices/{NUMBER}/download", "finance")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert pdf.headers["content-disposition"] == f'attachment; filename="invoice-{NUMBER}.pdf"'
    text = await api.call("GET", f"/api/invoices/{NUMBER}/download?format=csv", "finance")
    assert text.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert {r["tenant"] for r in rows} == {HOSTILE}  # the name is data in the CSV, quoted as CSV quotes
    assert [r["savings"] for r in rows if r["record"] == "total"] == ["1.45"]
    as_json = await api.call("GET", f"/api/invoices/{NUMBER}/download?format=json", "finance")
    assert as_json.json()["tenant"] == HOSTILE and as_json.json()["number"] == NUMBER
    draft_csv = await api.call("GET", f"/api/invoices/draft?tenant_id={tid}&month=2026-11&format=csv", "finance")
    assert draft_csv.status_code == 200 and "DRAFT" in draft_csv.text
    assert f'filename="invoice-draft-{tid}-2026-11.csv"' in draft_csv.headers["content-disposition"]


async def test_void_then_reissue_gives_a_new_number(api: Api, clickhouse_store: ClickHouseStore) -> None:
    tid = await tenant_with_rows(api, clickhouse_store)
    await api.ok("POST", "/api/invoices", "finance", json={"tenant_id": tid, "month": "2026-10"})
    voided = await api.ok("POST", f"/api/invoices/{NUMBER}/void", "finance")
    assert (voided["status"], voided["voided_at"]) == ("void", "2026-12-01T12:00:00Z")
    await api.refused("POST", f"/api/invoices/{NUMBER}/paid", "finance", 409, "invalid_invoice_state", "number")
    second = await api.ok("POST", "/api/invoices", "finance", json={"tenant_id": tid, "month": "2026-10"})
    assert (second["number"], second["replaces"]) == ("NET-2026-000002", NUMBER)
    listed = (await api.ok("GET", "/api/invoices", "finance"))["data"]
    assert [(r["number"], r["status"], r["replaced_by"]) for r in listed] == [
        (NUMBER, "void", "NET-2026-000002"), ("NET-2026-000002", "issued", None)]


async def test_every_change_is_audited_with_before_and_after(api: Api, clickhouse_store: ClickHouseStore) -> None:
    tid = await tenant_with_rows(api, clickhouse_store)
    await api.ok("POST", "/api/invoices", "finance", json={"tenant_id": tid, "month": "2026-10"})
    await api.ok("POST", "/api/invoices", "finance", json={"tenant_id": tid, "month": "2026-10"})  # no change
    await api.ok("POST", f"/api/invoices/{NUMBER}/paid", "finance")
    await api.ok("POST", f"/api/invoices/{NUMBER}/paid", "finance")  # already paid: no change
    (issued,) = await api.audit("invoice.issue")
    assert (issued["actor"], issued["target_type"], issued["target_id"], issued["before"]) == (
        "finance@example.com", "invoice", NUMBER, None)
    assert (issued["after"]["status"], issued["after"]["period"], issued["after"]["tenant_id"]) == (
        "issued", "2026-10", tid)
    (paid,) = await api.audit("invoice.paid")
    assert (paid["before"]["status"], paid["after"]["status"], paid["after"]["paid_at"]) == (
        "issued", "paid", "2026-12-01T12:00:00Z")
    await api.refused("POST", f"/api/invoices/{NUMBER}/void", "finance", 409, "invalid_invoice_state", "number")
    assert await api.audit("invoice.void") == []


async def test_viewer_and_anonymous_callers_are_refused(api: Api, clickhouse_store: ClickHouseStore) -> None:
    tid = await tenant_with_rows(api, clickhouse_store)
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/api/invoices", None), ("POST", "/api/invoices", {"tenant_id": tid, "month": "2026-10"}),
        ("GET", f"/api/invoices/draft?tenant_id={tid}&month=2026-10", None), ("GET", f"/api/invoices/{NUMBER}", None),
        ("GET", f"/api/invoices/{NUMBER}/download", None), ("POST", f"/api/invoices/{NUMBER}/paid", None),
        ("POST", f"/api/invoices/{NUMBER}/void", None),
    ]
    for method, url, body in calls:
        await api.refused(method, url, "viewer", 403, "insufficient_role", json=body)
        await api.refused(method, url, None, 401, "missing_token", json=body)
    assert (await api.ok("GET", "/api/invoices", "admin"))["total"] == 0


async def test_bad_input_and_unknown_ids(api: Api, clickhouse_store: ClickHouseStore) -> None:
    tid = await tenant_with_rows(api, clickhouse_store)
    draft = "/api/invoices/draft"
    await api.refused("GET", f"{draft}?month=2026-10", "finance", 400, "missing_required_parameter", "tenant_id")
    await api.refused("GET", f"{draft}?tenant_id={tid}&month=2026-13", "finance", 400, "invalid_value", "month")
    await api.refused("GET", f"{draft}?tenant_id={tid}&month=0000-01", "finance", 400, "invalid_value", "month")
    await api.refused("GET", f"{draft}?tenant_id={tid}&month=2026-10&format=xls", "finance", 400, "invalid_value",
                      "format")
    await api.refused("GET", f"{draft}?tenant_id=ten_x&month=2026-10", "finance", 404, "tenant_not_found",
                      "tenant_id")
    await api.refused("POST", "/api/invoices", "finance", 400, "invalid_value", "month",
                      json={"tenant_id": tid, "month": "2026-12"})  # December has not ended
    await api.refused("POST", "/api/invoices", "finance", 400, "missing_required_parameter", "month",
                      json={"tenant_id": tid})
    await api.refused("POST", "/api/invoices", "finance", 404, "tenant_not_found", "tenant_id",
                      json={"tenant_id": "ten_x", "month": "2026-10"})
    for method, suffix in (("GET", ""), ("GET", "/download"), ("POST", "/paid"), ("POST", "/void")):
        await api.refused(method, f"/api/invoices/NET-2026-999999{suffix}", "finance", 404, "invoice_not_found",
                          "number")
    await api.refused("GET", "/api/invoices?tenant_id=ten_x", "finance", 404, "tenant_not_found", "tenant_id")
    assert (await api.ok("GET", "/api/invoices", "finance"))["total"] == 0


async def test_an_unreachable_ledger_is_a_503(database: Database) -> None:
    away = database.settings.model_copy(update={"clickhouse_url": f"http://127.0.0.1:{closed_port()}"})
    async with running_api(Database(away, database.sessions)) as api:
        tid = (await api.ok("POST", "/api/tenants", json={"name": "acme"}, status=201))["id"]
        error = await api.refused("GET", f"/api/invoices/draft?tenant_id={tid}&month=2026-10", "finance", 503,
                                  "ledger_unavailable")
        assert "127.0.0.1" not in error["message"]


async def test_by_default_the_ledger_is_opened_for_each_request(
    database: Database, settings: Settings, clickhouse_store: ClickHouseStore
) -> None:
    # No reader given: the app opens the configured (embedded) store as `netra invoices` does, while no Netra runs.
    ledger = {"clickhouse_url": settings.clickhouse_url, "clickhouse_database": settings.clickhouse_database}
    async with running_api(Database(database.settings.model_copy(update=ledger), database.sessions)) as api:
        tid = await tenant_with_rows(api, clickhouse_store)
        for _ in range(2):
            draft = await api.ok("GET", f"/api/invoices/draft?tenant_id={tid}&month=2026-10", "finance")
            assert (draft["calls"], draft["savings"]) == (3, "1.45")
