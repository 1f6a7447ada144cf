"""A template's budget comparison spreads each budget period over the report's buckets by its calendar days in each
(a quarter's budget against months is no longer all January's), checked against SQL and arithmetic written here."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import text

from activities.deps import ActivityDeps
from tests.report_templates.conftest import save_template
from tests.report_templates.test_runs import json_of
from tests.reports.conftest import KnownData

# A quarterly travel budget and a yearly office one, for 2024: 91 and 366 days.
BUDGETS = [("Travel Q1", "Travel", "quarter", "2024-01-01", "2024-04-01", "900.00"),
           ("Office 2024", "Office", "year", "2024-01-01", "2025-01-01", "3660.00")]  # fmt: skip

# Per month of the report and budget period: the amount, the period's days in the month, and its days in all.
DAYS_SQL = """
SELECT to_char(m, 'YYYY-MM'), b.category, bp.amount,
       least(bp.ends_on, (m + interval '1 month')::date) - greatest(bp.starts_on, m::date), bp.ends_on - bp.starts_on
FROM budget_periods bp JOIN budgets b ON b.id = bp.budget_id,
     generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 month') AS m
WHERE bp.starts_on < (m + interval '1 month')::date AND bp.ends_on > m::date
"""

BY_MONTH = {
    "dataset": "entries",
    "group_by": [{"bucket": "month"}, {"field": "category"}],
    "aggregates": [{"key": "spent", "function": "sum", "field": "amount"}],
    "filters": [{"field": "status", "op": "eq", "value": "approved"},
                {"field": "category", "op": "in", "value": ["Travel", "Office"]}],
    "comparisons": [{"kind": "budget"}],
}  # fmt: skip


async def _budgets(deps: ActivityDeps, known: KnownData) -> None:
    async with deps.db.transaction() as tx:
        for name, category, kind, starts, ends, amount in BUDGETS:
            await tx.sql.run(
                "INSERT INTO budgets (name, category, period_kind, starts_on, policy, currency, thresholds, owner_id, "
                "created_by_id) VALUES (%s, %s, %s, %s, 'warn', 'USD', '{}', %s, %s)",
                (name, category, kind, date.fromisoformat(starts), known.accountant.id, known.accountant.id),
            )
            await tx.sql.run(
                "INSERT INTO budget_periods (budget_id, starts_on, ends_on, amount) SELECT id, %s, %s, %s FROM budgets "
                "WHERE name = %s",
                (date.fromisoformat(starts), date.fromisoformat(ends), Decimal(amount), name),
            )


async def _exact_shares(deps: ActivityDeps, first: str, last: str) -> dict[tuple[str, str], Fraction]:
    """(month, category) -> the budget's exact share of that month: amount x days in it / days in its period."""
    async with deps.db.transaction() as tx:
        rows = (await tx.session.execute(text(DAYS_SQL), {"first": first, "last": last})).tuples()
        return {(month, category): Fraction(amount) * days / total for month, category, amount, days, total in rows}


def _budgets_by_row(document: dict[str, Any]) -> dict[tuple[str, str], Decimal]:
    return {(row["bucket"], row["category"]): Decimal(row["budget"]) for row in document["rows"]}


async def test_a_quarterly_and_a_yearly_budget_against_months_share_out_by_days(
    known: KnownData, reports_deps: ActivityDeps
) -> None:
    await _budgets(reports_deps, known)
    template_id = await save_template(reports_deps, known.accountant.id, BY_MONTH, "Spending against budget")
    document = await json_of(reports_deps, known.accountant.id, template_id)
    shown = _budgets_by_row(document)
    exact = await _exact_shares(reports_deps, "2024-01-01", "2024-03-01")
    assert set(shown) == set(exact)  # a row for each month and budgeted category, spending or not
    for key, share in exact.items():
        assert abs(Fraction(shown[key]) - share) < Fraction(1, 100), (key, shown[key], float(share))
    by_category: dict[str, Decimal] = defaultdict(Decimal)
    for (_, category), amount in shown.items():
        by_category[category] += amount
    assert by_category["Travel"] == Decimal("900.00")  # the quarter, whole: its parts add up to it to the cent
    # Spelled out: 900.00 x 31/91 = 306.5934..., x 29/91 = 286.8131...; rounded along the running total (306.59 after
    # January, 593.41 after February) the cent left over lands in February. 3660.00 x 31/366 is 310.00 exactly.
    assert [shown[(month, "Travel")] for month in ("2024-01", "2024-02", "2024-03")] == [
        Decimal("306.59"), Decimal("286.82"), Decimal("306.59")
    ]  # fmt: skip
    assert [shown[(month, "Office")] for month in ("2024-01", "2024-02", "2024-03")] == [
        Decimal("310.00"), Decimal("290.00"), Decimal("310.00")
    ]  # fmt: skip
    assert document["totals"][0]["budget"] == "1810.00"  # 900.00 + the year's 910.00 of 91 days

    # A period that cuts the quarter: its months hold the same parts; January's stays out.
    late = await json_of(reports_deps, known.accountant.id, template_id, start=date(2024, 2, 1))
    assert {key: value for key, value in _budgets_by_row(late).items() if key[1] == "Travel"} == {
        ("2024-02", "Travel"): Decimal("286.82"), ("2024-03", "Travel"): Decimal("306.59")
    }  # fmt: skip


async def test_without_a_time_bucket_the_period_holds_its_days_share(
    known: KnownData, reports_deps: ActivityDeps
) -> None:
    await _budgets(reports_deps, known)
    by_category = {**BY_MONTH, "group_by": [{"field": "category"}]}
    template_id = await save_template(reports_deps, known.accountant.id, by_category, "Budget by category")
    january = await json_of(reports_deps, known.accountant.id, template_id, end=date(2024, 1, 31))
    exact = await _exact_shares(reports_deps, "2024-01-01", "2024-01-01")
    budgets = {row["category"]: Decimal(row["budget"]) for row in january["rows"]}
    # January's days' share, as in the report by month (not the whole quarter's 900.00, which starts in January).
    assert budgets == {"Travel": Decimal("306.59"), "Office": Decimal("310.00")}
    for (_, category), share in exact.items():
        assert abs(Fraction(budgets[category]) - share) < Fraction(1, 100)
