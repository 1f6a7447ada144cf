"""Entries as a submit leaves them, written straight to the database for tests that read totals back with SQL."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from domain.models import Entry
from tests.conftest import TestUser


def locked_entry(
    owner: TestUser, kind: str, currency: str, amount: str, rate: str, day: date, status: str, **fields: Any
) -> Entry:
    """An entry in USD books with its rate locked at `rate` (USD per unit) on its own date, the base amount rounded
    half-up to cents; `fields` set anything else (category, description, source, vendor)."""
    base = (Decimal(amount) * Decimal(rate)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return Entry(
        kind=kind,
        amount=Decimal(amount),
        currency=currency,
        category=fields.pop("category", "travel"),
        description=fields.pop("description", ""),
        entry_date=day,
        owner_id=owner.id,
        status=status,
        base_currency="USD",
        fx_rate=Decimal(rate),
        rate_date=day,
        rate_source="base" if currency == "USD" else "ecb",
        base_amount=base,
        **fields,
    )
