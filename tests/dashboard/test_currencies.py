"""The dashboard over entries in several currencies: totals in the base currency, and per-currency subtotals of the
originals scoped like every other figure, both equal to SQL written here."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from activities.deps import ActivityDeps
from tests.conftest import MakeUser, TestUser
from tests.fx.builders import locked_entry

PLACES = {"USD": Decimal("0.01"), "EUR": Decimal("0.01"), "GBP": Decimal("0.01"), "JPY": Decimal("1")}


async def _sql(deps: ActivityDeps, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    async with deps.db.transaction() as tx:
        return [tuple(row) for row in await tx.session.execute(text(statement), params)]


async def test_overview_totals_and_currency_subtotals_equal_sql(
    make_user: MakeUser, activity_deps: ActivityDeps, client: httpx.AsyncClient
) -> None:
    admin = await make_user("admin")
    manager = await make_user("manager")
    mine = await make_user("employee", manager=manager)
    other = await make_user("employee")
    today = datetime.now(UTC).date()
    first = today.replace(day=1)
    async with activity_deps.db.transaction() as tx:
        tx.session.add_all(
            [
                locked_entry(mine, "expense", "EUR", "200.00", "1.085", first, "approved"),
                locked_entry(mine, "expense", "EUR", "45.55", "1.0911", first, "approved"),
                locked_entry(mine, "expense", "JPY", "12345", "0.0067", first, "approved"),
                locked_entry(mine, "revenue", "GBP", "99.99", "1.27", first, "approved"),
                locked_entry(
                    mine, "expense", "GBP", "10.00", "1.27", first, "pending"
                ),  # pending: not in the subtotals
                locked_entry(other, "expense", "USD", "70.00", "1", first, "approved"),
                locked_entry(other, "expense", "JPY", "5000", "0.0068", first, "approved"),
            ]
        )

    async def overview(user: TestUser) -> dict[str, Any]:
        response = await client.get("/api/v1/dashboard/overview", headers=user.headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    for viewer, owners in ((admin, None), (manager, [manager.id, mine.id]), (mine, [mine.id])):
        body = await overview(viewer)
        assert body["base_currency"] == "USD"
        scoped = "" if owners is None else " AND owner_id = ANY(:owners)"
        params = {"start": first, **({} if owners is None else {"owners": owners})}
        by_currency = await _sql(
            activity_deps,
            "SELECT currency, kind, count(*), sum(amount), sum(base_amount) FROM entries "
            "WHERE status = 'approved' AND date_trunc('month', entry_date) = :start" + scoped + " "
            "GROUP BY currency, kind ORDER BY kind DESC, currency",
            **params,
        )
        assert body["current_by_currency"] == [
            {
                "currency": currency,
                "kind": kind,
                "entries": int(count),
                "original_total": format(Decimal(original).quantize(PLACES[currency]), "f"),
                "base_total": format(Decimal(base).quantize(Decimal("0.01")), "f"),
            }
            for currency, kind, count, original, base in by_currency
        ], viewer.role
        totals = dict(
            await _sql(
                activity_deps,
                "SELECT kind, sum(base_amount) FROM entries WHERE status = 'approved' "
                "AND date_trunc('month', entry_date) = :start" + scoped + " GROUP BY kind",
                **params,
            )
        )
        zero = Decimal("0")
        assert body["current"]["expenses"] == format(
            Decimal(totals.get("expense", zero)).quantize(Decimal("0.01")), "f"
        )
        assert body["current"]["revenue"] == format(Decimal(totals.get("revenue", zero)).quantize(Decimal("0.01")), "f")

    recent = {(e["currency"], e["amount"], e["base_amount"]) for e in (await overview(mine))["recent_entries"]}
    assert ("JPY", "12345", "82.71") in recent  # the original to its own minor units, the base beside it
    assert {e["currency"] for e in (await overview(mine))["current_by_currency"]} == {"EUR", "JPY", "GBP"}
