"""The savings ledger's event writer: one ClickHouse row per call, through a write-ahead spill on disk."""

from __future__ import annotations

from gateway.ledger.base import Ledger, NullLedgerWriter, RowSink
from gateway.ledger.writer import LedgerWriter

__all__ = ["Ledger", "LedgerWriter", "NullLedgerWriter", "RowSink"]
