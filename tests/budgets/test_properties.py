"""Properties of the budget rules with many paths (hypothesis): the period grid, the threshold crossings, and the
ledger under `block` against any sequence of submissions, approvals and releases, each possibly run twice."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activities.deps import ActivityDeps
from domain.approvals import repository as requests
from domain.audit.service import SYSTEM
from domain.budgets import ledger
from domain.budgets import service as budgets
from domain.budgets.periods import MONTHS, add_months, grid
from domain.budgets.schemas import BudgetCreate
from domain.budgets.thresholds import crossings
from domain.errors import InvalidState
from domain.models import User
from tests.approvals.conftest import submit_directly
from tests.budgets.conftest import books, this_month
from tests.conftest import MakeUser

firsts = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)).map(lambda day: day.replace(day=1))


@given(kind=st.sampled_from(sorted(MONTHS)), start=firsts, count=st.integers(1, 60), day=st.dates())
def test_the_grid_tiles_time_from_its_start_without_gaps(kind: str, start: date, count: int, day: date) -> None:
    periods = grid(kind, start, count)
    assert periods[0].starts_on == start
    assert all(a.ends_on == b.starts_on for a, b in zip(periods, periods[1:], strict=False))
    assert all(p.ends_on == add_months(p.starts_on, MONTHS[kind]) for p in periods)
    holding = [p for p in periods if p.contains(day)]
    assert len(holding) == (1 if start <= day < periods[-1].ends_on else 0)


@given(
    limits=st.lists(st.integers(1, 200), min_size=1, max_size=4, unique=True),
    uses=st.lists(st.integers(0, 3000), min_size=1, max_size=30),
)
def test_a_threshold_alerts_once_for_each_rise_through_it(limits: list[int], uses: list[int]) -> None:
    amount = Decimal(1000)
    states: dict[int, tuple[bool, int]] = {}
    alerts: dict[int, int] = {}
    for used in uses:
        for threshold, above, count in crossings(limits, states, Decimal(used), amount):
            states[threshold] = (above, count)
            if above:
                alerts[threshold] = alerts.get(threshold, 0) + 1
    for threshold in limits:
        levels = [0, *uses]
        rises = sum(
            1 for before, after in zip(levels, levels[1:], strict=False)
            if before * 100 < amount * threshold <= after * 100
        )  # fmt: skip
        assert alerts.get(threshold, 0) == rises
        assert states.get(threshold, (False, 0)) == ((uses[-1] * 100 >= amount * threshold), rises)


Step = tuple[str, int, int]  # (what, amount in units or which request, repeat)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(1, 400), st.integers(1, 2)),
        st.tuples(st.sampled_from(["approve", "release"]), st.integers(0, 9), st.integers(1, 2)),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps)
async def test_block_never_lets_the_books_pass_the_amount_and_a_repeat_writes_nothing(
    plan: list[Step], activity_deps: ActivityDeps, make_user: MakeUser
) -> None:
    deps = activity_deps
    employee = await make_user("employee", manager=await make_user("manager"))
    category = f"c-{uuid.uuid4().hex[:10]}"  # a budget of its own for each example
    async with deps.db.transaction() as tx:
        owner = await tx.session.get(User, employee.id)
        assert owner is not None
        body = BudgetCreate(name="Tight", category=category, period="month", starts_on=this_month(),
                            amounts=[Decimal("500.00")], policy="block")  # fmt: skip
        budget = await budgets.create(tx, "USD", owner, body, SYSTEM)
    open_ids: list[int] = []
    rows = 0  # ledger rows a careful bookkeeper would have written: one per move, whatever was repeated
    for what, value, repeat in plan:
        if what == "submit":
            try:
                submitted = await submit_directly(deps, employee.id, f"{value}.00", category=category)
                open_ids.append(submitted.request.id)
                rows += 1
            except InvalidState:
                pass  # refused: over the budget
        elif open_ids:
            async with deps.db.transaction() as tx:
                request = await requests.request(tx.sql, open_ids.pop(value % len(open_ids)), lock=True)
                for _ in range(repeat):  # a retried transition
                    if what == "approve":
                        await ledger.settle(tx.sql, request)
                    else:
                        await ledger.release(tx.sql, request, "rejected")
            rows += 2 if what == "approve" else 1
        now = await books(deps, budget.id)  # the sums equal the ledger's (books checks it)
        assert now.committed + now.actual <= Decimal("500")
        assert now.rows == rows
