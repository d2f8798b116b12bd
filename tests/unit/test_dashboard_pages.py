"""The dashboard's pages as a browser sees them: the session cookie, the charts from ledger rows, escaping, CSRF
on forms, activating a policy, issuing and downloading an invoice."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core import audit
from core.settings import Settings
from core.tenants import create_tenant
from policies.models import parse_policy
from policies.store import add_policies, edit_policy, list_policies
from tests.invoice_rows import ledger_row
from tests.unit.conftest import Database
from tests.unit.dashboard_harness import HTML, Dashboard, running_dashboard

HOSTILE = "<script>alert('x')</script> & \"co\""


@pytest.fixture
async def dash(settings: Settings, database: Database) -> AsyncIterator[Dashboard]:
    async with running_dashboard(settings, database) as running:
        yield running


async def hostile_tenant(dash: Dashboard) -> str:
    async with dash.admin.sessions() as session:
        return (await create_tenant(session, HOSTILE, "early")).id


def assert_no_inline_code(html: str) -> None:
    """What the CSP would refuse: inline scripts, event handlers, style elements or attributes."""
    assert "<script>" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+=", html) and "<style" not in html and " style=" not in html


async def test_login_sets_an_httponly_strict_session_cookie(dash: Dashboard) -> None:
    http = await dash.browser()
    cookie = next(c for c in http.cookies.jar if c.name == "netra_access")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/"
    page = await http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


async def test_a_page_without_a_session_goes_to_the_login_page_and_comes_back(dash: Dashboard) -> None:
    http = await dash.admin.new_client()
    response = await http.get("/savings?period=7d", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fsavings%3Fperiod%3D7d"
    api = await http.get("/api/me", headers=HTML)
    assert api.status_code == 401 and api.json()["error"]["code"] == "missing_token"


async def test_the_overview_charts_ledger_rows_and_escapes_tenant_names(dash: Dashboard) -> None:
    tenant_id = await hostile_tenant(dash)
    at = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)  # the harness clock says 12:00 that day
    rows = [ledger_row(f"r{i}", tenant_id, HOSTILE, at, kind="cache" if i % 2 else "", cost="0" if i % 2 else "0.01")
            for i in range(6)]
    dash.store.insert_rows(rows, "overview")
    http = await dash.browser("viewer")
    html = (await http.get("/")).text
    spend = html[html.index('<svg xmlns="http://www.w3.org/2000/svg" id="chart-spend"'):]
    spend = spend[:spend.index("</svg>")]
    assert 'class="line reactive nofill"' in spend and "Baseline (without Netra)" in spend
    # The hour of the calls: six at a $0.01 baseline, three of them cache hits that cost nothing.
    assert '<desc class="value">0.03</desc>' in spend and '<desc class="value">0.06</desc>' in spend
    assert "$0.03" in html  # three cached calls saved $0.01 each
    assert HOSTILE not in html and "&lt;script&gt;alert(" in html
    assert_no_inline_code(html)
    css = await http.get("/charts.css")
    assert css.status_code == 200 and "#chart-spend" in css.text


async def test_an_empty_ledger_says_how_to_send_the_first_request(dash: Dashboard) -> None:
    http = await dash.browser("viewer")
    html = (await http.get("/?period=7d")).text
    assert "No requests in this period yet" in html and "/v1/chat/completions" in html
    assert "Send your first request" in (await http.get("/calls")).text


async def propose(dash: Dashboard) -> str:
    policy = parse_policy({"kind": "cache", "name": HOSTILE, "ttl": "1h", "author": "agent:run-1",
                           "estimate": {"monthly_saving_usd": "123.45", "traffic_share": 0.4}})
    async with dash.admin.sessions() as session:
        return (await add_policies(session, [policy], "agent:run-1"))[0]


async def test_a_proposed_policy_is_activated_by_its_form_with_the_csrf_token(dash: Dashboard) -> None:
    policy_id = await propose(dash)
    http = await dash.browser("admin")
    listing = (await http.get("/policies")).text
    assert "$123.45" in listing and HOSTILE not in listing
    token = re.search(r'name="csrf_token" value="([^"]+)"', listing)
    assert token is not None
    forged = await http.post(f"/policies/{policy_id}/activate", data={"csrf_token": "guess"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"
    done = await http.post(f"/policies/{policy_id}/activate", data={"csrf_token": token[1]})
    assert done.status_code == 303 and done.headers["location"] == f"/policies/{policy_id}"
    async with dash.admin.sessions() as session:
        assert [p.status for p in await list_policies(session)] == ["active"]
        entry = (await audit.entries(session, limit=1))[0]
    # The page goes through the API's service: the same audit entry as POST /api/policies/{id}/activate.
    assert entry.action == "policy.activate" and entry.before is not None and entry.after is not None
    assert (entry.before["status"], entry.after["status"]) == ("proposed", "active")
    assert entry.before["id"] == entry.after["id"] == policy_id
    assert 'id="policy-status">active<' in (await http.get(f"/policies/{policy_id}")).text


async def test_a_viewer_sees_policies_but_cannot_activate_them(dash: Dashboard) -> None:
    policy_id = await propose(dash)
    http = await dash.browser("viewer")
    listing = (await http.get("/policies")).text
    assert "Activate" not in listing
    token = http.cookies["netra_csrf"]
    refused = await http.post(f"/policies/{policy_id}/activate", data={"csrf_token": token})
    assert refused.status_code == 403
    page = await http.get("/invoices")
    assert page.status_code == 403 and "finance role" in page.text
    assert page.headers["content-type"].startswith("text/html")


async def test_an_invoice_is_issued_from_its_form_and_downloaded(dash: Dashboard) -> None:
    tenant_id = await hostile_tenant(dash)
    november = datetime(2026, 11, 14, 9, tzinfo=UTC)
    dash.store.insert_rows([ledger_row(f"n{i}", tenant_id, HOSTILE, november, kind="cache", cost="0",
                                       baseline="2.50") for i in range(4)], "november")
    http = await dash.browser("finance")
    form = (await http.get("/invoices")).text
    assert 'value="2026-11"' in form and "No invoices issued yet" in form
    issued = await http.post("/invoices", data={"csrf_token": http.cookies["netra_csrf"], "tenant": HOSTILE,
                                                "month": "2026-11"})
    assert issued.status_code == 303, issued.text
    page = (await http.get(issued.headers["location"])).text
    assert "$10.00" in page and "$2.00" in page  # saved, and the early tier's 20% fee
    number = issued.headers["location"].rsplit("/", 1)[1]
    pdf = await http.get(f"/invoices/{number}/download/pdf")
    assert pdf.content.startswith(b"%PDF-") and pdf.headers["content-type"] == "application/pdf"
    csv = (await http.get(f"/invoices/{number}/download/csv")).text
    assert csv.splitlines()[-1].endswith(",4,10.00,0.00,10.00,0.20,2.00,8.00")
    assert number in (await http.get("/invoices")).text


async def test_the_session_cookie_alone_cannot_write_through_the_api(dash: Dashboard) -> None:
    http = await dash.browser("admin")
    body = {"email": "new@example.com", "password": "a long enough password", "role": "admin"}
    refused = await http.post("/api/users", json=body)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    foreign = await http.post("/api/users", json=body, headers={"x-csrf-token": http.cookies["netra_csrf"],
                                                                "origin": "http://evil.test"})
    assert foreign.status_code == 403
    made = await http.post("/api/users", json=body, headers={"x-csrf-token": http.cookies["netra_csrf"]})
    assert made.status_code == 201
    listing = await http.get("/api/users")
    assert "new@example.com" in listing.text  # reads need no token


async def test_signing_out_from_the_page_ends_the_page_session(dash: Dashboard) -> None:
    http = await dash.browser("viewer")
    out = await http.post("/api/auth/logout", data={"csrf_token": http.cookies["netra_csrf"]})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert "netra_access" not in http.cookies
    assert (await http.get("/")).status_code == 303


async def test_credentials_show_a_key_by_its_last_four_characters_only(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    config = tmp_path / "netra.yaml"
    config.write_text('providers:\n  - {name: "up<i>", kind: openai, api_key: "sk-very-secret-9876"}\n'
                      'models:\n  - {name: gpt-4o-mini, provider: "up<i>"}\n')
    async with running_dashboard(settings.model_copy(update={"config": config}), database) as running:
        http = await running.browser("admin")
        html = (await http.get("/credentials")).text
    assert "…9876" in html and "sk-very-secret" not in html
    assert "up&lt;i&gt;" in html and "up<i>" not in html
    assert "api.openai.com" in html


async def test_a_policy_page_shows_each_version_and_the_diff_between_them(dash: Dashboard) -> None:
    policy_id = await propose(dash)
    edited = parse_policy({"kind": "cache", "name": HOSTILE, "ttl": "15m"})
    async with dash.admin.sessions() as session:
        await edit_policy(session, policy_id, edited, "human:ops")
    html = (await (await dash.browser("viewer")).get(f"/policies/{policy_id}")).text
    assert "Version 2 (proposed" in html and "Version 1 (superseded" in html
    assert '<span class="del">-ttl: 3600</span>' in html and '<span class="add">+ttl: 900</span>' in html
    assert "null" not in html and HOSTILE not in html
