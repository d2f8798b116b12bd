"""Invoices over real stores: rows inserted into chDB as the ledger inserts them, SQLite and PostgreSQL numbering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clickhouse import ClickHouseStore
from core.db import create_engine, create_sessionmaker
from core.invoices.document import content_hash
from core.invoices.lifecycle import list_invoices, mark_paid, set_fee_rate, void
from core.invoices.numbering import next_number
from core.invoices.records import InvoiceCounter
from core.invoices.service import Books, generate, issue
from core.invoices.terms import InvoiceError, Month
from core.migrate import upgrade_relational_async
from core.settings import Settings
from core.tenants import create_tenant
from tests.invoice_rows import ledger_row

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
OCT, NOV, DEC = Month(2026, 10), Month(2026, 11), Month(2026, 12)
D = Decimal


@pytest.fixture
async def sqlite_sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Migrated sessions on this test's SQLite file."""
    await upgrade_relational_async(settings)
    engine = create_engine(settings)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> async_sessionmaker[AsyncSession]:
    """Sessions on SQLite, or on this test's own PostgreSQL database."""
    sessions: async_sessionmaker[AsyncSession] = request.getfixturevalue(
        "sqlite_sessions" if request.param == "sqlite" else "sessions"
    )
    return sessions


@pytest.fixture
def books(db: async_sessionmaker[AsyncSession], clickhouse_store: ClickHouseStore) -> Books:
    return Books(db, clickhouse_store)


async def tenant(books: Books, name: str, tier: str = "early") -> str:
    async with books.sessions() as session:
        return (await create_tenant(session, name, tier)).id


def insert(store: ClickHouseStore, rows: list[dict[str, Any]], token: str) -> None:
    store.insert_rows(rows, token)


def oct_rows(tenant_id: str, name: str, prefix: str, *savings: str) -> list[dict[str, Any]]:
    return [
        ledger_row(f"{prefix}-{i}", tenant_id, name, datetime(2026, 10, 3 + i, tzinfo=UTC), kind="cache",
                   baseline=amount, cost="0")
        for i, amount in enumerate(savings)
    ]


async def test_draft_issue_twice_void_and_reissue(books: Books) -> None:
    tid = await tenant(books, "acme")
    rows = oct_rows(tid, "acme", "a", "0.400000000", "0.300000001")
    rows.append(ledger_row("a-r", tid, "acme", datetime(2026, 10, 20, tzinfo=UTC), kind="route",
                           baseline="1.000000000", cost="0.250000000"))
    rows.append(ledger_row("a-next", tid, "acme", datetime(2026, 11, 1, tzinfo=UTC), kind="cache", cost="0"))
    insert(books.store, rows, "t1")
    draft = await generate(books, "acme", OCT)
    assert (draft["status"], draft["number"], draft["calls"]) == ("draft", None, 3)
    assert (draft["savings"], draft["savings_by_kind"]["cache"], draft["savings_by_kind"]["route"]) == (
        "1.45", "0.70", "0.75")
    assert (draft["fee"], draft["net_benefit"], draft["actual_cost"]) == ("0.29", "1.16", "0.25")
    first = await issue(books, "acme", OCT, NOW)
    assert first["number"] == "NET-2026-000001" and first["status"] == "issued"
    assert first["content_hash"] == content_hash(first) and first["issued_at"] == "2026-12-02T09:00:00Z"
    again = await issue(books, "acme", OCT, datetime(2026, 12, 3, tzinfo=UTC))
    assert again == first and await generate(books, "acme", OCT) == first
    async with books.sessions() as session:
        voided = await void(session, first["number"], NOW)
    assert voided["status"] == "void" and voided["content_hash"] == first["content_hash"]
    assert (await generate(books, "acme", OCT))["status"] == "draft"
    second = await issue(books, "acme", OCT, NOW)
    assert second["number"] == "NET-2026-000002" and second["replaces"] == "NET-2026-000001"
    assert second["savings"] == first["savings"]
    async with books.sessions() as session:
        listed = await list_invoices(session, "acme")
    assert [(r["number"], r["status"], r["replaced_by"]) for r in listed] == [
        ("NET-2026-000001", "void", "NET-2026-000002"), ("NET-2026-000002", "issued", None),
    ]


async def test_paid_and_void_transitions_are_checked(books: Books) -> None:
    await tenant(books, "globex", "mid")
    paid = await issue(books, "globex", OCT, NOW)  # an empty month still gets an invoice, of zero
    assert (paid["calls"], paid["savings"], paid["fee"]) == (0, "0.00", "0.00")
    async with books.sessions() as session:
        assert (await mark_paid(session, paid["number"], NOW))["paid_at"] == "2026-12-02T09:00:00Z"
        assert (await mark_paid(session, paid["number"], NOW))["status"] == "paid"
        with pytest.raises(InvoiceError, match="paid and cannot be voided"):
            await void(session, paid["number"], NOW)
    voided = await issue(books, "globex", NOV, NOW)
    async with books.sessions() as session:
        await void(session, voided["number"], NOW)
        with pytest.raises(InvoiceError, match="void and cannot be paid"):
            await mark_paid(session, voided["number"], NOW)
        with pytest.raises(InvoiceError, match="no invoice numbered"):
            await mark_paid(session, "NET-2026-999999", NOW)


async def test_a_month_is_issued_only_once_it_has_ended(books: Books) -> None:
    await tenant(books, "initech")
    with pytest.raises(InvoiceError, match="before it ends"):
        await issue(books, "initech", DEC, NOW)
    assert (await generate(books, "initech", DEC))["status"] == "draft"


async def test_late_rows_become_one_adjustment_on_the_next_invoice(books: Books) -> None:
    tid = await tenant(books, "hooli")
    insert(books.store, oct_rows(tid, "hooli", "on-time", "0.400000000"), "on-time")
    october = await issue(books, "hooli", OCT, NOW)
    late = oct_rows(tid, "hooli", "late", "0.250000000")
    late.append(ledger_row("late-plain", tid, "hooli", datetime(2026, 10, 30, tzinfo=UTC), cost="0.05",
                           baseline="0.05"))
    late.append(ledger_row("nov-1", tid, "hooli", datetime(2026, 11, 5, tzinfo=UTC), kind="batch", cost="0.5",
                           baseline="1"))
    insert(books.store, late, "late")
    assert await generate(books, "hooli", OCT) == october  # issued: never recomputed
    november = await issue(books, "hooli", NOV, NOW)
    shown = [(li["period"], li["kind"], li["calls"], li["savings"], li["actual"]) for li in november["lines"]]
    assert shown == [
        ("2026-11", "batch", 1, "0.50", "0.50"),
        ("2026-10", "adjustment:cache", 1, "0.25", "0.00"),
        ("2026-10", "adjustment:none", 1, "0.00", "0.05"),
    ]
    assert (november["savings"], november["calls"], november["fee"]) == ("0.75", 3, "0.15")
    assert november["savings_by_kind"]["adjustment:cache"] == "0.25"
    assert [li["kind"] for li in (await generate(books, "hooli", DEC))["lines"]] == []  # billed once only
    insert(books.store, oct_rows(tid, "hooli", "later", "0.010000000"), "later")
    december = await generate(books, "hooli", DEC)
    assert [(li["kind"], li["savings"]) for li in december["lines"]] == [("adjustment:cache", "0.01")]
    async with books.sessions() as session:
        await void(session, november["number"], NOW)
    redone = await generate(books, "hooli", DEC)  # November's adjustments are void: December carries them
    assert [(li["kind"], li["savings"]) for li in redone["lines"]] == [
        ("adjustment:cache", "0.26"), ("adjustment:none", "0.00"),
    ]


async def test_enterprise_rate_is_the_tenants_own(books: Books) -> None:
    tid = await tenant(books, "umbrella", "enterprise")
    insert(books.store, oct_rows(tid, "umbrella", "u", "10.000000000"), "u")
    assert (await generate(books, "umbrella", OCT))["fee"] == "2.00"
    async with books.sessions() as session:
        assert await set_fee_rate(session, "umbrella", D("0.075")) == "0.075"
        await create_tenant(session, "small", "free")
        with pytest.raises(InvoiceError, match="only enterprise"):
            await set_fee_rate(session, "small", D("0.1"))
    doc = await generate(books, "umbrella", OCT)
    assert (doc["fee_rate"], doc["fee"], doc["net_benefit"]) == ("0.075", "0.75", "9.25")


@pytest.mark.postgres
async def test_numbers_are_gap_free_under_concurrent_issues(
    sessions: async_sessionmaker[AsyncSession], clickhouse_store: ClickHouseStore
) -> None:
    books = Books(sessions, clickhouse_store)
    names = [f"t{i:02d}" for i in range(12)]
    for name in names:
        tid = await tenant(books, name)
        insert(clickhouse_store, oct_rows(tid, name, name, "0.100000000"), name)
    # Every tenant issues October and November at once, twice over: 24 invoices, each month issued once.
    work = [issue(books, n, m, NOW) for n in names for m in (OCT, NOV)] * 2
    docs = await asyncio.gather(*work)
    numbers = sorted({d["number"] for d in docs})
    assert numbers == [f"NET-2026-{i:06d}" for i in range(1, 25)]
    assert len({(d["tenant"], d["period"]) for d in docs}) == 24
    async with sessions() as session:
        taken = await next_number(session, 2026)
        await session.rollback()  # a transaction that fails gives its number back
        assert taken == await next_number(session, 2026) == "NET-2026-000025"
        await session.commit()
        assert await next_number(session, 2027) == "NET-2027-000001"
        await session.commit()
        counters = {c.year: c.last_number for c in (await session.scalars(select(InvoiceCounter))).all()}
    assert counters == {2026: 25, 2027: 1}


async def test_a_reissued_month_takes_back_the_adjustment_billed_before(books: Books) -> None:
    tid = await tenant(books, "stark")
    insert(books.store, oct_rows(tid, "stark", "on-time", "0.400000000"), "on-time")
    october = await issue(books, "stark", OCT, NOW)
    insert(books.store, oct_rows(tid, "stark", "late", "0.250000000"), "late")
    november = await issue(books, "stark", NOV, NOW)
    assert [(li["kind"], li["savings"]) for li in november["lines"]] == [("adjustment:cache", "0.25")]
    async with books.sessions() as session:
        await void(session, october["number"], NOW)
    redone = await issue(books, "stark", OCT, NOW)
    assert redone["savings"] == "0.65" and redone["replaces"] == october["number"]
    december = await generate(books, "stark", DEC)
    assert [(li["period"], li["kind"], li["calls"], li["savings"]) for li in december["lines"]] == [
        ("2026-10", "adjustment:cache", -1, "-0.25"),
    ]
    assert (december["savings"], december["fee"], december["net_benefit"]) == ("-0.25", "0.00", "-0.25")
