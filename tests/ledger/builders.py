"""Journal sources built by hand, for tests of the journal builders alone (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from domain.ledger.mappings import Booked, Chart
from domain.ledger.sources import InvoiceLineSource, InvoiceSource, Trail

ROLES = {
    ("payable", ""): ("2000", "liability"),
    ("receivable", ""): ("1200", "asset"),
    ("cash", ""): ("1000", "asset"),
    ("tax", ""): ("2200", "liability"),
    ("fx_gain", ""): ("7100", "revenue"),
    ("fx_loss", ""): ("7200", "expense"),
    ("rounding", ""): ("7900", "expense"),
    ("category", "*"): ("6000", "expense"),
    ("category", "travel"): ("6100", "expense"),
    ("category", "invoices"): ("4000", "revenue"),
    ("source", "*"): ("4900", "revenue"),
}


def full_chart() -> Chart:
    return Chart(
        {key: Booked(code, f"account {code}", "") for key, (code, _) in ROLES.items()},
        {key: account_type for key, (_, account_type) in ROLES.items()},
    )


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def line(
    line_id: int, net: str, tax_rate: str = "0", *, fee_on: date | None = None, **fields: Any
) -> InvoiceLineSource:
    """An invoice line (a late fee when `fee_on` is given: charged that day); its tax rounded half-up to cents."""
    amount = Decimal(net)
    tax = (amount * Decimal(tax_rate) / 100).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    return InvoiceLineSource(
        id=line_id, position=line_id, kind="late_fee" if fee_on else "item",
        description=fields.get("description", f"line {line_id}"), net=amount, tax=tax, tax_rate=Decimal(tax_rate),
        created_at=at(fee_on or date(2000, 1, 1)), reminder_step=fields.get("step", 1) if fee_on else None,
    )  # fmt: skip


def invoice(
    lines: list[InvoiceLineSource], rate: str, issued: date, *, voided: datetime | None = None, currency: str = "EUR"
) -> InvoiceSource:
    return InvoiceSource(
        id=7, number="INV-2026-0007", currency=currency, fx_rate=Decimal(rate), issue_date=issued, voided_at=voided,
        customer="Acme GmbH", cost_center="lead", lines=tuple(lines), issued=Trail("Ada Admin", at(issued), "i" * 64),
        voided=Trail("Vic Voider", voided, "v" * 64),
    )  # fmt: skip
