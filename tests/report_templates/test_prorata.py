"""A budget period shared among a report's buckets by calendar days: the parts always add up to the budget, to the
last minor unit, each is within one unit of its exact share (a fraction computed here), and a stretch's part is the
same whatever else the report holds."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.report_templates.dataset import spread, stretches
from domain.report_templates.prorata import overlap_days, pro_rata
from domain.reports.datasets import ReportQuery, ReportScope
from domain.reports.schemas import ReportType

AMOUNTS = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1e13"), places=4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    amount=AMOUNTS,
    places=st.sampled_from([0, 2, 3]),
    days=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=60).filter(lambda d: sum(d) > 0),
)
def test_the_parts_add_up_to_the_amount_and_each_is_within_a_unit_of_its_share(
    amount: Decimal, places: int, days: list[int]
) -> None:
    parts = pro_rata(amount, days, places)
    assert sum(parts, Decimal(0)) == amount
    exponent = amount.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    unit = Fraction(1, 10 ** max(places, -exponent))  # the amount's own places when it has more than the currency
    for part, weight in zip(parts, days, strict=True):
        share = Fraction(amount) * weight / sum(days)
        assert abs(Fraction(part) - share) < unit
        assert Fraction(part) % unit == 0  # in whole units
        if weight == 0:
            assert part == 0


def test_a_quarter_in_months_gets_each_month_its_days_rounded_along_the_running_total() -> None:
    # 900.00 over 91 days. The running totals: 31 days 306.5934... -> 306.59, 60 days 593.4065... -> 593.41, 91 days
    # 900.00; the parts are their differences: the cent the rounding leaves over lands in February.
    assert pro_rata(Decimal("900.00"), [31, 29, 31], 2) == [Decimal("306.59"), Decimal("286.82"), Decimal("306.59")]
    assert pro_rata(Decimal("900.0000"), [31, 29, 31], 2)[0] == Decimal("306.59")  # as NUMERIC(19, 4) reads it
    assert pro_rata(Decimal("1000"), [1, 1, 1], 0) == [Decimal(333), Decimal(334), Decimal(333)]  # JPY: no cents
    assert pro_rata(Decimal("0.05"), [1, 0, 1], 2) == [Decimal("0.03"), Decimal(0), Decimal("0.02")]
    with pytest.raises(ValueError):
        pro_rata(Decimal(1), [0, 0], 2)


def _query(start: date, end: date) -> ReportQuery:
    return ReportQuery(ReportType.TEMPLATE, start, end, ReportScope(True))


BUCKETS = st.sampled_from(["week", "month", "quarter", "year"])
DAYS = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


@settings(max_examples=100, deadline=None)
@given(
    bucket=BUCKETS,
    report_start=DAYS,
    report_days=st.integers(min_value=0, max_value=800),
    budget_start=DAYS,
    budget_months=st.sampled_from([1, 3, 12]),
    amount=AMOUNTS,
)
def test_a_budget_period_spread_over_a_report_holds_its_days_share_of_each_bucket(
    bucket: str, report_start: date, report_days: int, budget_start: date, budget_months: int, amount: Decimal
) -> None:
    """Whatever the bucket and the report's period, a budget period's parts are its days in each bucket, each the
    same as in a report of that stretch alone; when the report covers the whole budget period they add up to the
    amount."""
    starts_on = budget_start.replace(day=1)
    index = starts_on.year * 12 + starts_on.month - 1 + budget_months
    ends_on = date(index // 12, index % 12 + 1, 1)
    query = _query(report_start, report_start + timedelta(days=report_days))
    found = stretches(bucket, query.period_from, query.period_to)
    parts = spread(amount, starts_on, ends_on, found, query, 2)
    total = (ends_on - starts_on).days
    unit = Fraction(1, 10 ** max(2, -int(amount.normalize().as_tuple().exponent)))
    for stretch, part in parts:
        days = sum(1 for n in range((stretch.last - stretch.first).days + 1)
                   if starts_on <= stretch.first + timedelta(days=n) < ends_on)  # fmt: skip
        assert days > 0 and abs(Fraction(part) - Fraction(amount) * days / total) < unit
        alone = _query(stretch.first, stretch.last)
        assert spread(amount, starts_on, ends_on, stretches(None, stretch.first, stretch.last), alone, 2) == [
            (stretches(None, stretch.first, stretch.last)[0], part)
        ]
    covered = query.period_from <= starts_on and ends_on - timedelta(days=1) <= query.period_to
    if covered:
        assert sum((part for _, part in parts), Decimal(0)) == amount


def test_overlap_days_reads_a_budget_period_as_half_open() -> None:
    january = (date(2024, 1, 1), date(2024, 2, 1))
    assert overlap_days(*january, date(2024, 1, 1), date(2024, 1, 31)) == 31
    assert overlap_days(*january, date(2024, 1, 29), date(2024, 2, 4)) == 3  # a week across the month's end
    assert overlap_days(*january, date(2024, 2, 1), date(2024, 2, 29)) == 0  # the next period's first day
