"""The budget side of an expense as people see it: the early check on a new draft (nothing charged, nothing
locked) and the budgets each waiting request was charged to, for its approvers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, Field

from core.sql import Sql
from domain.budgets import ledger
from domain.models.rows import EntryRow
from domain.money import AmountOut, in_minor_units


class BudgetFlag(BaseModel):
    """A budget an expense is charged to, what it had available then, and whether the expense goes over it."""

    budget_id: int
    name: str
    policy: str = Field(description="ignore, warn, extra_approval or block")
    period_start: date
    available: AmountOut = Field(description="before this expense, in the base currency")
    over: bool


async def preview(sql: Sql, entry: EntryRow, base_amount: Decimal | None, currency: str) -> list[BudgetFlag] | None:
    """What a submit would find now (nothing is charged or locked): the draft's requester learns early. None when
    the base amount is not known yet (no rate)."""
    if base_amount is None or entry.kind != ledger.EXPENSE:
        return None
    found = await ledger.assess_for_owner(
        sql, owner_id=entry.owner_id, category=entry.category, day=entry.entry_date, amount=base_amount
    )
    return [
        BudgetFlag(
            budget_id=charge.budget_id,
            name=charge.name,
            policy=charge.policy,
            period_start=charge.starts_on,
            available=in_minor_units(charge.available, currency),
            over=found.over(charge),
        )
        for charge in found.charges
    ]


_FLAGS = (
    "SELECT l.request_id, l.budget_id, b.name, l.policy, l.period_starts_on, l.available_before, l.over "
    "FROM budget_ledger l JOIN approval_requests r ON r.id = l.request_id AND r.round = l.round "
    "JOIN budgets b ON b.id = l.budget_id WHERE l.request_id = ANY(%s) AND l.kind = 'committed' "
    "ORDER BY l.request_id, l.budget_id"
)


async def flags_for(sql: Sql, request_ids: list[int], currency: str) -> dict[int, list[BudgetFlag]]:
    """The budgets each request's current round was charged to, as its approvers see them (one query a page)."""
    if not request_ids:
        return {}
    found: dict[int, list[BudgetFlag]] = {}
    for request_id, budget_id, name, policy, starts_on, available, over in await sql.all(_FLAGS, (request_ids,)):
        found.setdefault(request_id, []).append(
            BudgetFlag(
                budget_id=budget_id,
                name=name,
                policy=policy,
                period_start=starts_on,
                available=in_minor_units(available, currency),
                over=over,
            )
        )
    return found
