"""A small organisation (the dashboard tests' `org`: admin, accountant, top <- mid <- e1, e2; top <- e3; other <- e4)
and a hand-built book on it: approved and other entries over two years, budgets, invoices and a recurring invoice.
The tests compare the analytics with SQL written beside them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from activities.deps import ActivityDeps
from domain.dashboard.service import add_months
from domain.invoices import repository as invoices
from domain.models import Entry
from tests.conftest import TestUser
from tests.dashboard.conftest import Org, org  # noqa: F401

BASE = "USD"


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), UTC)


@dataclass
class Book:
    today: date
    this_month: date


# (owner, kind, months back from this month, day of month, amount, currency, base amount, category, vendor/source,
#  status)
ENTRIES: list[tuple[str, str, int, int, str, str, str, str, str | None, str]] = [
    ("e1", "expense", 0, 2, "100.00", "USD", "100.00", "travel", "Rail Co", "approved"),
    ("e1", "expense", 1, 5, "200.00", "EUR", "217.00", "travel", "Rail Co", "approved"),
    ("e1", "expense", 12, 3, "50.00", "USD", "50.00", "travel", "Rail Co", "approved"),
    ("e1", "expense", 13, 3, "80.00", "USD", "80.00", "meals", "Diner", "approved"),
    ("e2", "expense", 0, 1, "300.00", "USD", "300.00", "software", "Softy", "approved"),
    ("e2", "expense", 2, 9, "40.00", "USD", "40.00", "meals", None, "approved"),
    ("e2", "expense", 0, 1, "999.00", "USD", "999.00", "software", "Softy", "pending"),
    ("e2", "expense", 1, 1, "777.00", "USD", "777.00", "software", "Softy", "rejected"),
    ("e3", "expense", 0, 1, "60.00", "GBP", "76.32", "hardware", "Shop", "approved"),
    ("e3", "revenue", 0, 1, "1000.00", "USD", "1000.00", "services", "Client A", "approved"),
    ("e3", "revenue", 12, 1, "500.00", "USD", "500.00", "services", "Client A", "approved"),
    ("e4", "expense", 0, 1, "25.00", "USD", "25.00", "meals", "Diner", "approved"),
    ("e4", "revenue", 1, 1, "250.00", "USD", "250.00", "licences", "Client B", "approved"),
    ("mid", "expense", 3, 1, "70.00", "USD", "70.00", "travel", "Rail Co", "approved"),
]


async def write_entries(deps: ActivityDeps, org: Org, today: date) -> None:
    this_month = today.replace(day=1)
    async with deps.db.transaction() as tx:
        for owner, kind, back, day, amount, currency, base, category, party, status in ENTRIES:
            month = add_months(this_month, -back)
            entry_date = min(month.replace(day=day), today)
            decided = at(entry_date, 15) if status in ("approved", "rejected") else None
            tx.session.add(
                Entry(
                    kind=kind, amount=Decimal(amount), currency=currency, category=category,
                    description=f"{owner} {category}", entry_date=entry_date,
                    vendor=party if kind == "expense" else None, source=party if kind == "revenue" else None,
                    owner_id=getattr(org, owner).id, status=status, submitted_at=at(entry_date, 9),
                    decided_at=decided, base_currency=BASE, fx_rate=Decimal(base) / Decimal(amount),
                    rate_date=entry_date, rate_source="manual", base_amount=Decimal(base),
                )
            )  # fmt: skip


def rows(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())


async def get(client: httpx.AsyncClient, user: TestUser, path: str, **params: Any) -> httpx.Response:
    return await client.get(f"/api/v1/analytics/{path}", params=params, headers=user.headers)


@pytest.fixture
def today() -> date:
    return datetime.now(UTC).date()


def week_start(day: date) -> date:
    return day - timedelta(days=day.isoweekday() - 1)


__all__ = ["BASE", "Book", "get", "invoices", "org", "rows", "week_start", "write_entries"]
