"""What expenses charge to budgets: the saga's three moves, each in the transaction of the approval transition it
accounts for.

- commit: a submission (or a resubmission's new round) charges its base amount to every budget whose scope and
  period match the entry. The policies are read first, without a lock (`assess`, `enforce`): a `block` budget the
  expense does not fit refuses it early, an `extra_approval` one adds a level to the chain. The charge itself is one
  statement per budget at the end of the transaction, which takes the period's row lock and checks the room again
  in the same UPDATE: two submissions never both take the last room of a `block` budget.
- release: a request that ends without approval (rejected, withdrawn, expired, sent back for changes, its submission
  undone, its workflow closed without approval: the reconciler) gives its commitments back.
- settle: an approved request's commitments become actual spend.

Where they run: last in their transaction, after its audit row. One lock order everywhere: the dashboard totals'
rows (the entry's trigger), the audit chain's lock (held to the commit), then the budget period. A submit that
held the period while it waited for the totals, and a decision that held the totals while it waited for the period,
deadlocked (make bench found it: tests/budgets/test_saga.py::
test_submits_and_decisions_at_once_on_one_budget_all_go_through). Taken after the audit row, a period's lock is
only ever taken by the one transaction that holds the audit chain's, so nobody waits for it.

Each writes ledger rows keyed by workflow, round, kind and budget and moves the period's sums in the same statement,
only for what is not written yet (a retried transition changes nothing; the unique key is the last guard). A move
that carries a period's use through an alert threshold tells `thresholds`.
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


# The same for an owner whose managers are not read yet (a draft's early check): one statement, the line upwards
# walked inside it (cycle-safe, as domain.users.directory walks it).
_MATCHING_FOR_OWNER = (
    "WITH RECURSIVE up(id, manager_id, seen) AS (SELECT id, manager_id, ARRAY[id] FROM users WHERE id = %s "
    "UNION ALL SELECT u.id, u.manager_id, up.seen || u.id FROM up JOIN users u ON u.id = up.manager_id "
    "WHERE u.id <> ALL(up.seen)) "
    "SELECT b.id, b.name, b.policy, b.owner_id, p.starts_on, p.ends_on, p.amount, p.committed, p.actual "
    "FROM budgets b JOIN budget_periods p ON p.budget_id = b.id AND p.starts_on <= %s AND %s < p.ends_on "
    "WHERE (b.team_manager_id IS NULL OR b.team_manager_id IN (SELECT id FROM up)) "
    "AND (b.category IS NULL OR b.category = %s) ORDER BY b.id"
)


async def assess_for_owner(sql: Sql, *, owner_id: int, category: str, day: date, amount: Decimal) -> Assessment:
    """`assess` for an expense by `owner_id`, their managers found in the same statement."""
    rows = await sql.all(_MATCHING_FOR_OWNER, (owner_id, day, day, category))
    return Assessment(amount, tuple(Charge(*row) for row in rows))


async def assess(sql: Sql, *, line_ids: list[int], category: str, day: date, amount: Decimal) -> Assessment:
    """The budgets an expense by the first of `line_ids` (its owner, then their managers upwards) in `category` on
    `day` falls in, as they stand (no lock: `commit` checks the room again under the period's lock)."""
    rows = await sql.all(_MATCHING, (day, day, line_ids, category))
    return Assessment(amount, tuple(Charge(*row) for row in rows))


def _over_budget(charge: Charge, amount: Decimal, currency: str) -> InvalidState:
    available = money_str(max(charge.available, Decimal(0)), currency)
    needed = money_str(amount, currency)
    return InvalidState(
        f"over budget: \u201c{charge.name}\u201d has {available} {currency} available for the period from "
        f"{charge.starts_on.isoformat()}; this expense needs {needed} {currency}",
        reason="over_budget",
        budget_id=charge.budget_id,
        budget=charge.name,
        available=available,
        needed=needed,
        period_start=charge.starts_on.isoformat(),
    )


def enforce(assessment: Assessment, currency: str) -> None:
    """A `block` budget the expense does not fit refuses it (409), naming the budget and what is available."""
    charge = assessment.blocking
    if charge is not None:
        raise _over_budget(charge, assessment.amount, currency)


# Charge one budget period, the room checked under its row lock (an UPDATE re-reads a row another transaction
# changed meanwhile before it decides), once per workflow, round and budget.
_COMMIT = """
WITH moved AS (
    UPDATE budget_periods p SET committed = p.committed + %(amount)s
    FROM budgets b
    WHERE p.budget_id = %(budget)s AND p.starts_on = %(period)s AND b.id = p.budget_id
      AND (b.policy <> 'block' OR p.amount - p.committed - p.actual >= %(amount)s)
      AND NOT EXISTS (SELECT 1 FROM budget_ledger l WHERE l.workflow_id = %(workflow)s AND l.round = %(round)s
                      AND l.kind = 'committed' AND l.budget_id = %(budget)s)
    RETURNING p.amount, p.committed, p.actual, b.policy, b.thresholds
), written AS (
    INSERT INTO budget_ledger (budget_id, period_starts_on, request_id, entry_id, workflow_id, round, kind, amount,
                               policy, available_before, over, reason)
    SELECT %(budget)s, %(period)s, %(request)s, %(entry)s, %(workflow)s, %(round)s, 'committed', %(amount)s, m.policy,
           m.amount - m.committed - m.actual + %(amount)s, m.amount - m.committed - m.actual < 0, 'submitted'
    FROM moved m
)
SELECT amount, committed, actual, policy, thresholds FROM moved
"""
_COMMITTED = (
    "SELECT 1 FROM budget_ledger WHERE workflow_id = %s AND round = %s AND kind = 'committed' AND budget_id = %s"
)
_NOW = "SELECT amount, committed, actual FROM budget_periods WHERE budget_id = %s AND starts_on = %s"


async def commit(sql: Sql, assessment: Assessment, request: RequestRow, currency: str) -> None:
    """Charge the assessed budgets for the request's current round: last in the transaction (the module says why).

    Refused (409, the transaction rolls back) when a `block` budget has no room now, or when an `extra_approval`
    budget the assessment found within its room has been filled meanwhile: the chain pinned lacks the level it asks
    for, so the expense is submitted again (the next assessment adds it)."""
    assert request.entry_id is not None
    for charge in assessment.charges:
        key = {"budget": charge.budget_id, "period": charge.starts_on, "request": request.id,
               "entry": request.entry_id, "workflow": request.workflow_id, "round": request.round,
               "amount": assessment.amount}  # fmt: skip
        moved = await sql.one(_COMMIT, key)
        if moved is None:
            if await sql.scalar(_COMMITTED, (request.workflow_id, request.round, charge.budget_id)):
                continue  # committed by an earlier run of this transition
            found = await sql.one(_NOW, (charge.budget_id, charge.starts_on))
            now = charge if found is None else _as_now(charge, *found)
            raise _over_budget(now, assessment.amount, currency)
        amount, committed, actual, policy, limits = moved
        if policy == "extra_approval" and not assessment.over(charge) and amount - committed - actual < 0:
            raise InvalidState(
                f"the budget \u201c{charge.name}\u201d was filled while this expense was being submitted, and it "
                "asks for an extra approval: submit the expense again",
                reason="budget_moved",
                budget_id=charge.budget_id,
            )
        await thresholds.moved(sql, charge.budget_id, charge.starts_on, limits, amount, committed + actual,
                               committed + actual - assessment.amount)  # fmt: skip


def _as_now(charge: Charge, amount: Decimal, committed: Decimal, actual: Decimal) -> Charge:
    return Charge(charge.budget_id, charge.name, charge.policy, charge.owner_id, charge.starts_on, charge.ends_on,
                  amount, committed, actual)  # fmt: skip


# A commitment still held: a `committed` row (as `c`) whose workflow, round and budget have no `released` row. The
# one definition for releasing (below), for an audit row written before it, and for the upkeep's search.
HELD = (
    "c.kind = 'committed' AND NOT EXISTS (SELECT 1 FROM budget_ledger x WHERE x.workflow_id = c.workflow_id "
    "AND x.round = c.round AND x.budget_id = c.budget_id AND x.kind = 'released')"
)

# Give back (or book as spent) every commitment of a request still open, in one statement: the ledger rows and the
# periods' sums together.
_RELEASE = f"""
WITH open AS (
    SELECT c.budget_id, c.period_starts_on, c.round, c.amount FROM budget_ledger c
    WHERE c.request_id = %(request)s AND {HELD}
), written AS (
    INSERT INTO budget_ledger (budget_id, period_starts_on, request_id, entry_id, workflow_id, round, kind, amount,
                               reason)
    SELECT o.budget_id, o.period_starts_on, %(request)s, %(entry)s, %(workflow)s, o.round, k.kind, o.amount,
           %(reason)s
    FROM open o CROSS JOIN (VALUES ('released'), ('actual')) AS k(kind)
    WHERE k.kind = 'released' OR %(actual)s
), periods AS (
    UPDATE budget_periods p
    SET committed = p.committed - o.amount, actual = p.actual + CASE WHEN %(actual)s THEN o.amount ELSE 0 END
    FROM (SELECT budget_id, period_starts_on, sum(amount) AS amount FROM open GROUP BY 1, 2) o, budgets b
    WHERE p.budget_id = o.budget_id AND p.starts_on = o.period_starts_on AND b.id = p.budget_id
    RETURNING p.budget_id, p.starts_on, p.amount, p.committed, p.actual, b.thresholds, o.amount AS moved
)
SELECT budget_id, starts_on, amount, committed, actual, thresholds, moved FROM periods ORDER BY budget_id
"""


async def release(sql: Sql, request: RequestRow, reason: str, *, actual: bool = False) -> None:
    """Give back every commitment of the request still open (any round); with `actual`, book it as spent instead
    (the request was approved). Last in the transaction, after its audit row (the module says why)."""
    if request.entry_id is None or request.subject_kind != EXPENSE:
        return
    params = {"request": request.id, "entry": request.entry_id, "workflow": request.workflow_id, "reason": reason,
              "actual": actual}  # fmt: skip
    for budget_id, starts_on, amount, committed, actual_now, limits, moved in await sql.all(_RELEASE, params):
        used = committed + actual_now
        before = used if actual else used + moved
        await thresholds.moved(sql, budget_id, starts_on, limits, amount, used, before)


async def settle(sql: Sql, request: RequestRow) -> None:
    """The request was approved: its commitments become actual spend."""
    await release(sql, request, "approved", actual=True)


async def open_commitments(sql: Sql, request: RequestRow) -> list[dict[str, Any]]:
    """The commitments the request still holds (for an audit row written before they are released)."""
    rows = await sql.all(
        f"SELECT c.budget_id, c.period_starts_on, c.amount FROM budget_ledger c WHERE c.request_id = %s AND {HELD} "
        "ORDER BY c.budget_id",
        (request.id,),
    )
    return [{"budget_id": b, "period_start": s.isoformat(), "committed": plain_str(a)} for b, s, a in rows]
