"""The dashboard as a person uses it, in Debian's Chromium: sign in, read the overview's chart of a replayed
workload, activate a proposed policy and see the gateway apply it, issue an invoice and download it, meet an empty
state, and read the overview on a phone. Screenshots go under each test's tmp path."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, ViewportSize, sync_playwright

from tests.browser.site import EMAIL, PASSWORD, PAST_MONTH, Site, ask, start_site, stop_site
from tests.e2e.harness import start_fake

pytestmark = pytest.mark.slow
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser_path: str) -> Iterator[Site]:
    fake, fake_url = start_fake()
    try:
        running = start_site(Path(tmp_path_factory.mktemp("site")), fake_url)
        try:
            yield running
        finally:
            stop_site(running)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
        if fake.stdout is not None:
            fake.stdout.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright, browser_path: str) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=browser_path, headless=True)
    yield launched
    launched.close()


def sign_in(page: Page, site: Site) -> None:
    """Through the login page, as a person would; it lands on the overview."""
    page.goto(site.admin_url + "/login")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(site.admin_url + "/")


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    """A signed-in page on a laptop-sized window; it fails the test if the CSP refused anything."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    refused: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            refused.append(message.text)

    opened.on("console", watch)
    sign_in(opened, site)
    yield opened
    context.close()
    assert refused == []


def test_the_overview_charts_the_replayed_workload(page: Page, shots: Path) -> None:
    chart = page.locator("svg#chart-spend")
    chart.wait_for()
    assert chart.locator("path.line").count() >= 2  # actual cost and baseline
    values = [float(v) for v in chart.locator("desc.value").all_text_contents() if v]
    assert any(v > 0 for v in values)
    assert Decimal(page.locator("#saved").inner_text().removeprefix("$")) > 0
    hits = page.locator("svg#chart-hits desc.value").all_text_contents()
    assert any(float(v) > 0 for v in hits if v)
    assert page.locator("svg#chart-savings-kind").is_visible()
    page.screenshot(path=shots / "overview.png", full_page=True)


def test_activating_a_proposed_policy_makes_the_gateway_apply_it(page: Page, site: Site, shots: Path) -> None:
    with site.client() as acme:
        assert ask(acme, "gpt-4o", "What rhymes with orange?") == "bypass"  # no cache policy for gpt-4o yet
        page.click("nav >> text=Policies")
        first = page.locator("table.policies tbody tr").first
        assert "proposed" in first.inner_text() and "$321.50" in first.inner_text()  # proposals first
        page.screenshot(path=shots / "policies.png", full_page=True)
        page.click("button[aria-label='Activate cache gpt-4o answers <b>too</b>']")
        page.wait_for_url(f"{site.admin_url}/policies/{site.proposed_id}")
        assert page.locator("#policy-status").inner_text() == "active"
        outcomes = []
        deadline = time.monotonic() + 30  # gateways poll the change counter every second
        while "hit" not in outcomes and time.monotonic() < deadline:
            outcomes.append(ask(acme, "gpt-4o", "What rhymes with orange?"))
        assert outcomes[-1] == "hit", outcomes
    page.screenshot(path=shots / "policy.png", full_page=True)


def test_an_invoice_is_issued_and_downloaded(page: Page, site: Site, shots: Path) -> None:
    page.click("nav >> text=Invoices")
    page.select_option("select[name=tenant]", "acme")
    page.fill("input[name=month]", PAST_MONTH)
    page.click("text=Issue invoice")
    page.wait_for_url(f"{site.admin_url}/invoices/*")
    assert page.locator("#invoice-status").inner_text() == "issued"
    page.screenshot(path=shots / "invoice.png", full_page=True)
    with page.expect_download() as pdf:
        page.click(".downloads >> text=PDF")
    assert Path(pdf.value.path()).read_bytes().startswith(b"%PDF-")
    with page.expect_download() as sheet:
        page.click(".downloads >> text=CSV")
    rows = list(csv.DictReader(io.StringIO(Path(sheet.value.path()).read_text())))
    total = rows[-1]
    assert (total["tenant"], total["period"], total["calls"], total["savings"], total["fee"]) == (
        "acme", PAST_MONTH, "8", "10.00", "2.00")


def test_a_tenant_without_traffic_is_told_how_to_send_its_first_request(page: Page, shots: Path) -> None:
    page.select_option("select[name=tenant]", label="tiny")
    page.click("form.picker >> text=Show")
    assert page.locator("text=No requests in this period yet").is_visible()
    assert "/v1/chat/completions" in page.locator("section.empty").inner_text()
    page.screenshot(path=shots / "empty.png", full_page=True)


def test_the_overview_fits_a_phone(browser: Browser, site: Site, shots: Path) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    phone = context.new_page()
    sign_in(phone, site)
    for path in ("/", "/policies", "/calls", "/invoices", "/tenants", "/credentials"):
        phone.goto(site.admin_url + path)
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)
    phone.goto(site.admin_url + "/")
    assert phone.locator("svg#chart-spend").bounding_box()["width"] <= PHONE["width"]  # type: ignore[index]
    phone.screenshot(path=shots / "phone.png", full_page=True)
    context.close()


def test_a_tenant_and_key_made_on_the_page_call_the_gateway_until_revoked(
    page: Page, site: Site, shots: Path
) -> None:
    page.click("nav >> text=Tenants")
    page.fill("input[name=name]", "made <here>")
    page.select_option("form[action='/tenants'] select[name=tier]", "early")
    page.click("text=Create tenant")
    page.wait_for_url(f"{site.admin_url}/tenants")
    made = page.locator("section.tenant", has_text="made <here>")
    assert "Tier early · active" in made.inner_text()
    made.locator("input[name=models]").fill("gpt-4o-mini")
    made.locator("button[aria-label='New key for made <here>']").click()
    key = page.locator("code.secret").inner_text()
    page.screenshot(path=shots / "new-key.png", full_page=True)
    app = openai.OpenAI(base_url=site.netra.url, api_key=key, max_retries=0)
    assert ask(app, "gpt-4o-mini", "Hello from a tenant made on the page") in ("miss", "bypass")
    page.click("text=Back to tenants and keys")
    page.locator("section.tenant", has_text="made <here>").locator("button", has_text="Revoke").click()
    page.wait_for_url(f"{site.admin_url}/tenants")
    assert "revoked" in page.locator("section.tenant", has_text="made <here>").inner_text()
    deadline = time.monotonic() + 30  # the gateway caches a key for a few seconds
    while time.monotonic() < deadline:
        try:
            ask(app, "gpt-4o-mini", "Still there?")
        except openai.AuthenticationError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("a revoked key kept working")
    page.screenshot(path=shots / "revoked.png", full_page=True)
