"""What expenses charge to budgets: the saga's three moves, each in the transaction of the approval transition it
accounts for.

- commit: a submission (or a resubmission's new round) charges its base amount to every budget whose scope and
  period match the entry, under a lock on those periods, after the policy had its say (`assess`, `enforce`): so two
  submissions never both take the last room of a `block` budget, and a commitment exists exactly while its request
  waits.
- release: a request that ends without approval (rejected, withdrawn, expired, sent back for changes, its submission
  undone, its workflow closed without approval: the reconciler) gives its commitments back.
- settle: an approved request's commitments become actual spend.

Each writes ledger rows keyed by workflow, round, kind and budget (ON CONFLICT DO NOTHING) and moves the period's
sums only for a row it wrote, so a retried transition changes nothing. Every move that changes a period's use checks
its alert thresholds (`thresholds.watch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from core.sql import Sql
from domain.budgets import thresholds
from domain.errors import InvalidState
from domain.models.rows import RequestRow
from domain.money import money_str, plain_str

EXPENSE = "expense"

_MATCHING = (
    "SELECT b.id, b.name, b.policy, b.owner_id, p.starts_on, p.ends_on, p.amount, p.committed, p.actual "
    "FROM budgets b JOIN budget_periods p ON p.budget_id = b.id AND p.starts_on <= %s AND %s < p.ends_on "
    "WHERE (b.team_manager_id IS NULL OR b.team_manager_id = ANY(%s)) AND (b.category IS NULL OR b.category = %s) "
    "ORDER BY b.id"
)


@dataclass(frozen=True)
class Charge:
    """A budget period an expense falls in, as it stood when the expense was assessed."""

    budget_id: int
    name: str
    policy: str
    owner_id: int
    starts_on: date
    ends_on: date
    amount: Decimal
    committed: Decimal
    actual: Decimal

    @property
    def available(self) -> Decimal:
        return self.amount - self.committed - self.actual


@dataclass(frozen=True)
class Assessment:
    """Every budget an expense of `amount` (base currency) is charged to, and what their policies say of it."""

    amount: Decimal
    charges: tuple[Charge, ...] = ()

    def over(self, charge: Charge) -> bool:
        return self.amount > charge.available

    @property
    def blocking(self) -> Charge | None:
        return next((c for c in self.charges if c.policy == "block" and self.over(c)), None)

    @property
    def extra_approval(self) -> Charge | None:
        """The first over-budget `extra_approval` budget: its owner gives the one extra level."""
        return next((c for c in self.charges if c.policy == "extra_approval" and self.over(c)), None)

    def flags(self) -> list[dict[str, Any]]:
        """What the requester and the approvers see: each budget charged, what was available, and whether over."""
        return [
            {
                "budget_id": c.budget_id,
                "name": c.name,
                "policy": c.policy,
                "period_start": c.starts_on.isoformat(),
                "available": plain_str(c.available),
                "over": self.over(c),
            }
            for c in self.charges
        ]


async def assess(sql: Sql, *, line_ids: list[int], category: str, day: date, amount: Decimal, lock: bool) -> Assessment:
    """The budgets an expense by the first of `line_ids` (its owner, then their managers upwards) in `category` on
    `day` falls in. `lock`: take the periods' rows for the transaction (a submit: they are charged next)."""
    query = _MATCHING + (" FOR UPDATE OF p" if lock else "")
    rows = await sql.all(query, (day, day, line_ids, category))
    return Assessment(amount, tuple(Charge(*row) for row in rows))


def enforce(assessment: Assessment, currency: str) -> None:
    """A `block` budget the expense does not fit refuses it (409), naming the budget and what is available."""
    charge = assessment.blocking
    if charge is None:
        return
    available = money_str(max(charge.available, Decimal(0)), currency)
    needed = money_str(assessment.amount, currency)
    raise InvalidState(
        f"over budget: \u201c{charge.name}\u201d has {available} {currency} available for the period from "
        f"{charge.starts_on.isoformat()}; this expense needs {needed} {currency}",
        reason="over_budget",
        budget_id=charge.budget_id,
        budget=charge.name,
        available=available,
        needed=needed,
        period_start=charge.starts_on.isoformat(),
    )


_INSERT = (
    "INSERT INTO budget_ledger (budget_id, period_starts_on, request_id, entry_id, workflow_id, round, kind, amount, "
    "policy, available_before, over, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (workflow_id, round, kind, budget_id) DO NOTHING RETURNING id"
)
_MOVE = (
    "UPDATE budget_periods SET committed = committed + %s, actual = actual + %s WHERE budget_id = %s AND starts_on = %s"
)


async def commit(sql: Sql, assessment: Assessment, request: RequestRow) -> list[dict[str, Any]]:
    """Charge the assessed budgets for the request's current round (the periods are locked by `assess`)."""
    assert request.entry_id is not None
    written: list[dict[str, Any]] = []
    touched: set[tuple[int, date]] = set()
    for charge in assessment.charges:
        over = assessment.over(charge)
        key = (charge.budget_id, charge.starts_on, request.id, request.entry_id, request.workflow_id, request.round)
        params = (*key, "committed", assessment.amount, charge.policy, charge.available, over, "submitted")
        if await sql.scalar(_INSERT, params) is None:
            continue  # committed already by an earlier run of this transition
        await sql.run(_MOVE, (assessment.amount, 0, charge.budget_id, charge.starts_on))
        touched.add((charge.budget_id, charge.starts_on))
        written.append({"budget_id": charge.budget_id, "period_start": charge.starts_on.isoformat(),
                        "committed": plain_str(assessment.amount), "policy": charge.policy, "over": over})  # fmt: skip
    await thresholds.watch(sql, touched)
    return written


_OPEN = (
    "SELECT c.budget_id, c.period_starts_on, c.round, c.amount FROM budget_ledger c WHERE c.request_id = %s "
    "AND c.kind = 'committed' AND NOT EXISTS (SELECT 1 FROM budget_ledger r WHERE r.workflow_id = c.workflow_id "
    "AND r.round = c.round AND r.budget_id = c.budget_id AND r.kind = 'released') ORDER BY c.budget_id"
)


async def release(sql: Sql, request: RequestRow, reason: str, *, actual: bool = False) -> list[dict[str, Any]]:
    """Give back every commitment of the request still open (any round); with `actual`, book it as spent instead
    (the request was approved). What was released, for the transition's audit row."""
    if request.entry_id is None or request.subject_kind != EXPENSE:
        return []
    written: list[dict[str, Any]] = []
    touched: set[tuple[int, date]] = set()
    for budget_id, starts_on, round_, amount in await sql.all(_OPEN, (request.id,)):
        base = (budget_id, starts_on, request.id, request.entry_id, request.workflow_id, round_)
        if await sql.scalar(_INSERT, (*base, "released", amount, None, None, False, reason)) is None:
            continue
        booked = actual and await sql.scalar(_INSERT, (*base, "actual", amount, None, None, False, reason)) is not None
        await sql.run(_MOVE, (-amount, amount if booked else 0, budget_id, starts_on))
        touched.add((budget_id, starts_on))
        written.append({"budget_id": budget_id, "period_start": starts_on.isoformat(),
                        "actual" if booked else "released": plain_str(amount)})  # fmt: skip
    await thresholds.watch(sql, touched)
    return written


async def settle(sql: Sql, request: RequestRow) -> list[dict[str, Any]]:
    """The request was approved: its commitments become actual spend."""
    return await release(sql, request, "approved", actual=True)
