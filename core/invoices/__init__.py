"""Savings invoices: computed from the ledger alone, stored once issued, rendered as JSON, CSV and PDF.

`compute` is pure (ledger sums in, an `Invoice` out); `ledger` reads the sums from ClickHouse; `service` keeps the
lifecycle (draft → issued → paid or void) in the relational store; `document`, `csvform` and `pdfform` render.
The formulas are stated in docs/invoices.md.
"""
