"""Issued invoices and the per-year number counter in the relational store (migration 0006)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, UTCDateTime

STATUSES = ("issued", "paid", "void")


class InvoiceRecord(Base):
    """An issued invoice: its content (canonical JSON) and hash never change; its status may (paid, void)."""

    __tablename__ = "invoices"

    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(8))
    # "<tenant id>/<period>" while issued or paid, NULL once void: unique, so a month has one invoice in force.
    open_key: Mapped[str | None] = mapped_column(String(48), unique=True, nullable=True)
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    # The exact ledger sums the invoice billed (its month's and its adjustments'), for later adjustments.
    basis: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(20), nullable=True)


class InvoiceCounter(Base):
    """The last invoice number issued in a year; incremented in the issuing transaction, so numbers have no gap."""

    __tablename__ = "invoice_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer)


def open_key(tenant_id: str, period: str) -> str:
    """The unique key of the invoice in force for a tenant's month."""
    return f"{tenant_id}/{period}"
