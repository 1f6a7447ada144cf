"""Trends equal SQL over the entries written in the test, for each scope: employee their own, a manager their subtree,
accountants and admins everyone."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx

from activities.deps import ActivityDeps
from domain.dashboard.service import add_months, change_percent
from tests.analytics.conftest import get, rows, write_entries
from tests.conftest import TestUser
from tests.dashboard.conftest import Org

MONTHLY = (
    "SELECT to_char(entry_date, 'YYYY-MM'), kind, sum(base_amount) FROM entries "
    "WHERE status = 'approved' AND (%(owners)s::bigint[] IS NULL OR owner_id = ANY(%(owners)s)) GROUP BY 1, 2"
)
BY_VENDOR = (
    "SELECT coalesce(vendor, ''), sum(base_amount) FROM entries WHERE status = 'approved' AND kind = 'expense' "
    "AND entry_date >= %(start)s AND entry_date < %(end)s "
    "AND (%(owners)s::bigint[] IS NULL OR owner_id = ANY(%(owners)s)) GROUP BY 1 ORDER BY 2 DESC, 1"
)
BY_TEAM = (
    "SELECT u.manager_id, sum(e.base_amount) FROM entries e JOIN users u ON u.id = e.owner_id "
    "WHERE e.status = 'approved' AND e.kind = 'expense' AND e.entry_date >= %(start)s AND e.entry_date < %(end)s "
    "AND (%(owners)s::bigint[] IS NULL OR e.owner_id = ANY(%(owners)s)) GROUP BY 1"
)


def scopes(org: Org) -> dict[str, tuple[TestUser, list[int] | None]]:
    return {
        "admin": (org.admin, None),
        "accountant": (org.accountant, None),
        "top": (org.top, [org.top.id, org.mid.id, org.e1.id, org.e2.id, org.e3.id]),
        "mid": (org.mid, [org.mid.id, org.e1.id, org.e2.id]),
        "e1": (org.e1, [org.e1.id]),
    }


def money(value: Any) -> str:
    return format(Decimal(value or 0).quantize(Decimal("0.01")), "f")


async def test_monthly_series_and_changes_equal_sql_for_each_scope(
    org: Org, activity_deps: ActivityDeps, client: httpx.AsyncClient, database_url: str, today: date
) -> None:
    await write_entries(activity_deps, org, today)
    start = add_months(today.replace(day=1), -11)
    for name, (viewer, owners) in scopes(org).items():
        found = {(month, kind): Decimal(v) for month, kind, v in rows(database_url, MONTHLY, {"owners": owners})}

        def amount(month: date, kind: str, found: dict[tuple[str, str], Decimal] = found) -> Decimal:
            return found.get((f"{month:%Y-%m}", kind), Decimal("0.00"))

        response = await get(client, viewer, "trends", months=12)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["scope"] == {"admin": "all", "accountant": "all", "e1": "own"}.get(name, "team")
        assert len(body["series"]) == 12 and body["start"] == start.isoformat()
        for index, row in enumerate(body["series"]):
            month = add_months(start, index)
            revenue, expenses = amount(month, "revenue"), amount(month, "expense")
            assert row == {
                "month": f"{month:%Y-%m}",
                "revenue": money(revenue),
                "expenses": money(expenses),
                "net": money(revenue - expenses),
                "revenue_mom_percent": change_percent(revenue, amount(add_months(month, -1), "revenue")),
                "expenses_mom_percent": change_percent(expenses, amount(add_months(month, -1), "expense")),
                "revenue_yoy_percent": change_percent(revenue, amount(add_months(month, -12), "revenue")),
                "expenses_yoy_percent": change_percent(expenses, amount(add_months(month, -12), "expense")),
            }, (name, month)
        plotted = body["charts"][0]
        assert plotted["labels"] == [row["month"] for row in body["series"]]
        assert plotted["series"][1]["values"] == [row["expenses"] for row in body["series"]]


async def test_groups_by_vendor_and_team_equal_sql(
    org: Org, activity_deps: ActivityDeps, client: httpx.AsyncClient, database_url: str, today: date
) -> None:
    await write_entries(activity_deps, org, today)
    end = add_months(today.replace(day=1), 1)
    window = {"start": add_months(end, -3), "end": end}
    for name, (viewer, owners) in scopes(org).items():
        vendors = rows(database_url, BY_VENDOR, {**window, "owners": owners})
        response = await get(client, viewer, "trends", months=3, by="vendor", top=2)
        assert response.status_code == 200, response.text
        groups = response.json()["groups"]
        expected = [(vendor, money(total)) for vendor, total in vendors[:2]]
        if len(vendors) > 2:
            expected.append((None, money(sum(Decimal(t) for _, t in vendors[2:]))))
        # `other` also holds groups with nothing in the window but something a window or a year before
        assert [(g["key"], g["total"]) for g in groups if g["total"] != "0.00"] == expected, name
        assert sum(Decimal(v) for g in groups for v in g["values"]) == sum(Decimal(t) for _, t in vendors)

        teams = {
            None if m is None else str(m): money(t)
            for m, t in rows(database_url, BY_TEAM, {**window, "owners": owners})
        }
        response = await get(client, viewer, "trends", months=3, by="team", top=20)
        # `other` may hold teams with nothing in the window but something in the window before (mid's own team)
        shown = {g["key"]: g["total"] for g in response.json()["groups"] if g["total"] != "0.00"}
        assert shown == teams, name


async def test_year_ago_and_previous_window_of_a_category(
    org: Org, activity_deps: ActivityDeps, client: httpx.AsyncClient, database_url: str, today: date
) -> None:
    await write_entries(activity_deps, org, today)
    this_month = today.replace(day=1)
    response = await get(client, org.e1, "trends", months=1, by="category")
    travel = next(g for g in response.json()["groups"] if g["key"] == "travel")
    sql = (
        "SELECT sum(base_amount) FROM entries WHERE status = 'approved' AND owner_id = %s AND category = 'travel' "
        "AND entry_date >= %s AND entry_date < %s"
    )

    def total(start: date, end: date) -> str:
        return money(rows(database_url, sql, (org.e1.id, start, end))[0][0])

    assert travel["total"] == total(this_month, add_months(this_month, 1)) == "100.00"
    assert travel["previous_total"] == total(add_months(this_month, -1), this_month) == "217.00"
    assert travel["year_ago_total"] == total(add_months(this_month, -12), add_months(this_month, -11)) == "50.00"
    assert travel["change_percent"] == change_percent(Decimal("100.00"), Decimal("217.00"))
    assert travel["yoy_percent"] == "100.00"
