"""Budgets over the whole stack: the approval tests' organisation (admin <- manager <- employee, a peer manager, an
accountant) served over HTTP with the project's workers, and the books of a budget read two ways: the period's
running sums and the ledger's rows, which must agree."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

import httpx

from activities.deps import ActivityDeps
from domain.audit.service import SYSTEM
from domain.budgets import service as budgets
from domain.budgets.schemas import BudgetCreate
from domain.models import User
from tests.approvals.conftest import client, team  # noqa: F401 - fixtures, used by name
from tests.conftest import TestUser


def this_month() -> date:
    return date.today().replace(day=1)


async def create_budget(http: httpx.AsyncClient, accountant: TestUser, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Team travel",
        "period": "month",
        "starts_on": this_month().isoformat(),
        "amounts": ["1000.00"],
        "policy": "warn",
        **fields,
    }
    response = await http.post("/api/v1/budgets", json=body, headers=accountant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


class Books(NamedTuple):
    """A budget period's committed and actual spend, as the period holds them and as the ledger adds up."""

    committed: Decimal
    actual: Decimal
    rows: int  # ledger rows of the period


_BOOKS = """
SELECT p.committed, p.actual,
       coalesce(sum(l.amount) FILTER (WHERE l.kind = 'committed'), 0)
         - coalesce(sum(l.amount) FILTER (WHERE l.kind = 'released'), 0),
       coalesce(sum(l.amount) FILTER (WHERE l.kind = 'actual'), 0),
       count(l.id)
FROM budget_periods p LEFT JOIN budget_ledger l ON l.budget_id = p.budget_id AND l.period_starts_on = p.starts_on
WHERE p.budget_id = %s AND p.starts_on = %s GROUP BY p.committed, p.actual
"""


async def books(deps: ActivityDeps, budget_id: int, period: date | None = None) -> Books:
    """The period's sums, checked against the ledger's (SQL sums over its rows) before they are returned."""
    async with deps.db.transaction() as tx:
        row = await tx.sql.one(_BOOKS, (budget_id, period or this_month()))
    assert row is not None
    committed, actual, ledger_committed, ledger_actual, rows = row
    assert (committed, actual) == (ledger_committed, ledger_actual), "the period's sums disagree with its ledger"
    return Books(committed, actual, rows)


async def ledger_rows(deps: ActivityDeps, entry_id: int) -> list[tuple[str, int, Decimal]]:
    """(kind, round, amount) of every ledger row of an entry, in the order written."""
    async with deps.db.transaction() as tx:
        rows = await tx.sql.all(
            "SELECT kind, round, amount FROM budget_ledger WHERE entry_id = %s ORDER BY id", (entry_id,)
        )
    return [(row[0], row[1], row[2]) for row in rows]


async def team_budget(deps: ActivityDeps, creator_id: int, manager_id: int) -> int:
    """A monthly budget of 1,000.00 for the manager's team, created through the domain; its id."""
    async with deps.db.transaction() as tx:
        creator = await tx.session.get(User, creator_id)
        assert creator is not None
        body = BudgetCreate(name="Team travel", team_manager_id=manager_id, period="month", starts_on=this_month(),
                            amounts=[Decimal("1000.00")])  # fmt: skip
        return (await budgets.create(tx, deps.settings.approvals.base_currency, creator, body, SYSTEM)).id
