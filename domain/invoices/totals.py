"""An invoice's amounts, from its lines: each line's net (quantity x unit price) and tax (net x rate) rounded to the
currency's minor units, half-up, then summed.

Per line, then summed (not summed, then rounded): each line on the PDF shows amounts that add up to the totals
printed under them, which is what a customer checks and what most tax authorities ask of a line-itemised invoice
(the EU VAT directive's art. 226 lists a rate and amount per rate; rounding per line is the common practice of
Odoo's and ERPNext's default "round per line"). The difference from rounding the sum is at most half a minor unit
per line; tests/invoices/test_totals.py shows a case where the two differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from domain.money import in_minor_units

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class LineAmounts:
    net: Decimal
    tax: Decimal


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal


def line_amounts(quantity: Decimal, unit_price: Decimal, tax_rate: Decimal, currency: str) -> LineAmounts:
    """One line: `tax_rate` in percent (19 for 19%)."""
    net = in_minor_units(quantity * unit_price, currency)
    tax = in_minor_units(net * tax_rate / HUNDRED, currency)
    return LineAmounts(net, tax)


def totals(lines: Iterable[LineAmounts]) -> Totals:
    """The invoice's totals: the sums of its lines' rounded amounts (no rounding left to do)."""
    items = list(lines)
    subtotal = sum((line.net for line in items), Decimal(0))
    tax_total = sum((line.tax for line in items), Decimal(0))
    return Totals(subtotal, tax_total, subtotal + tax_total)
