"""The dashboard overview's `budgets`: the current period of each budget the viewer may see, the most used first,
at most 20, with the figures kept in budget_periods and the burn against the time gone by."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import httpx
import pytest

from activities.deps import ActivityDeps
from domain.budgets.periods import Period, add_months
from tests.budgets.test_report import KnownBudget, insert_budget, money, percent
from tests.conftest import MakeUser, TestUser

OVERVIEW = "/api/v1/dashboard/overview"


def today() -> date:
    """The dashboard's today: the UTC date."""
    return datetime.now(UTC).date()


@dataclass
class Org:
    admin: TestUser
    accountant: TestUser
    top: TestUser  # manager of mid
    mid: TestUser  # manager of e1
    other: TestUser  # a manager of a separate team
    e1: TestUser
    budgets: dict[str, KnownBudget]


@pytest.fixture
async def org(make_user: MakeUser, activity_deps: ActivityDeps) -> Org:
    admin = await make_user("admin")
    accountant = await make_user("accountant")
    top = await make_user("manager")
    mid = await make_user("manager", manager=top)
    other = await make_user("manager")
    e1 = await make_user("employee", manager=mid)
    month = today().replace(day=1)

    async def budget(name: str, kind: str, start: date, owner: TestUser, figures: list[tuple[str, str, str]],
                     team: TestUser | None = None, category: str | None = None) -> KnownBudget:  # fmt: skip
        return await insert_budget(activity_deps, name, kind, start, owner, accountant, figures, team, category)

    budgets = {
        # last month, this month (current), next month
        "Mid team": await budget(
            "Mid team",
            "month",
            add_months(month, -1),
            mid,
            [("900.00", "0", "900.00"), ("1000.00", "200.00", "500.00"), ("1000.00", "0", "0")],
            team=mid,
        ),  # fmt: skip
        # a quarter from last month: today is in its second month
        "Top team": await budget(
            "Top team", "quarter", add_months(month, -1), top, [("3000.00", "300.00", "3000.00")], team=top
        ),  # fmt: skip
        "Other team": await budget("Other team", "month", month, other, [("400.00", "0", "0")], team=other),
        "Mid meals": await budget("Mid meals", "month", month, mid, [("100.00", "10.00", "0")], category="meals"),
        "Ended": await budget("Ended", "month", add_months(month, -3), mid, [("50.00", "0", "50.00")], team=mid),
        "Next month": await budget(
            "Next month", "month", add_months(month, 1), mid, [("70.00", "70.00", "0")], team=mid
        ),  # fmt: skip
    }
    return Org(admin, accountant, top, mid, other, e1, budgets)


def expected(budget: KnownBudget, day: date) -> dict[str, Any]:
    """The block's entry for `budget`'s period containing `day`, worked out with exact fractions."""
    starts_on, ends_on, amount, committed, actual = next(p for p in budget.periods if p[0] <= day < p[1])
    days = (ends_on - starts_on).days
    elapsed = Fraction((day - starts_on).days + 1, days)
    burn = Fraction(actual) / Fraction(amount) / elapsed
    return {
        "id": budget.id,
        "name": budget.name,
        "period": Period(starts_on, ends_on).label(budget.kind),
        "starts_on": starts_on.isoformat(),
        "ends_on": ends_on.isoformat(),
        "amount": money(amount),
        "committed": money(committed),
        "actual": money(actual),
        "available": money(amount - committed - actual),
        "used_percent": float(percent(Fraction(committed + actual) / Fraction(amount))),
        "elapsed_percent": float(percent(elapsed)),
        "burn": float(percent(burn / 100)),
    }


async def budgets_seen(http: httpx.AsyncClient, viewer: TestUser) -> list[dict[str, Any]]:
    response = await http.get(OVERVIEW, headers=viewer.headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["budgets"]
    return found


async def test_the_current_periods_most_used_first(org: Org, client: httpx.AsyncClient) -> None:
    day = today()
    seen = await budgets_seen(client, org.accountant)
    # Top team 110 %, Mid team 70 %, Mid meals 10 %, Other team 0 %; not the ended budget nor next month's.
    assert [b["name"] for b in seen] == ["Top team", "Mid team", "Mid meals", "Other team"]
    assert seen == [expected(org.budgets[b["name"]], day) for b in seen]
    top = seen[0]
    assert Decimal(top["available"]) == Decimal("-300.00") and top["used_percent"] == 110.0
    assert top["period"] == f"{add_months(day.replace(day=1), -1):%Y-%m} to {add_months(day.replace(day=1), 1):%Y-%m}"
    assert seen[1]["period"] == f"{day:%Y-%m}" and seen[1]["used_percent"] == 70.0
    assert seen[3]["burn"] == 0.0


async def test_each_viewer_sees_only_their_budgets(org: Org, client: httpx.AsyncClient) -> None:
    everything = {"Top team", "Mid team", "Mid meals", "Other team"}
    assert {b["name"] for b in await budgets_seen(client, org.admin)} == everything
    # top: their team's and mid's (mid is under top); not the category budget mid owns, nor another team's.
    assert {b["name"] for b in await budgets_seen(client, org.top)} == {"Top team", "Mid team"}
    # mid: their team's and the one they own; never top's, above them.
    assert {b["name"] for b in await budgets_seen(client, org.mid)} == {"Mid team", "Mid meals"}
    assert {b["name"] for b in await budgets_seen(client, org.other)} == {"Other team"}
    assert await budgets_seen(client, org.e1) == []


async def test_at_most_twenty_the_most_used(
    make_user: MakeUser, activity_deps: ActivityDeps, client: httpx.AsyncClient
) -> None:
    accountant = await make_user("accountant")
    month = today().replace(day=1)
    for n in range(25):  # used 0 %, 4 %, ... 96 %
        await insert_budget(activity_deps, f"Budget {n:02d}", "month", month, accountant, accountant,
                            [("100.00", "0", f"{4 * n}.00")], category=f"c{n}")  # fmt: skip
    seen = await budgets_seen(client, accountant)
    assert [b["name"] for b in seen] == [f"Budget {n:02d}" for n in range(24, 4, -1)]
    assert [b["used_percent"] for b in seen] == [float(4 * n) for n in range(24, 4, -1)]


async def test_a_budget_made_through_the_api_shows_at_once(make_user: MakeUser, client: httpx.AsyncClient) -> None:
    accountant = await make_user("accountant")
    manager = await make_user("manager")
    month = today().replace(day=1)
    body = {"name": "Team month", "team_manager_id": manager.id, "period": "month", "starts_on": month.isoformat(),
            "amounts": ["1000.00"], "policy": "warn"}  # fmt: skip
    response = await client.post("/api/v1/budgets", json=body, headers=accountant.headers)
    assert response.status_code == 201, response.text
    seen = await budgets_seen(client, manager)
    assert [(b["name"], b["amount"], b["available"], b["used_percent"], b["burn"]) for b in seen] == [
        ("Team month", "1000.00", "1000.00", 0.0, 0.0)
    ]
    assert await budgets_seen(client, await make_user("manager")) == []
