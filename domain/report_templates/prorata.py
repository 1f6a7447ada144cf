"""A budget period's amount shared among the stretches of a report by the calendar days each holds of it.

A quarterly budget compared with monthly buckets gives each month its days' share (January 31/91, February 29/91,
March 31/91 of a 2024 first quarter), never the whole quarter to its first month. The shares are exact fractions,
rounded to the currency's minor units along the running total: the parts up to a day hold the amount's share of the
days so far, rounded half up, and each part is the difference between two such running totals. So the parts always
add up to the amount, to the last unit (the remainder of the rounding lands where the running total crosses a unit),
each is within one unit of its exact share, and a stretch's part depends only on its own days, never on how the rest
of the budget period is cut: January's part is the same in a report by month, by week or of January alone. The
arithmetic is on whole numbers of units: nothing is a float, nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal


def overlap_days(start: date, end: date, first: date, last: date) -> int:
    """How many days of [start, end) (a budget period: its end is the next period's start) lie in [first, last]."""
    days = (min(end - timedelta(days=1), last) - max(start, first)).days + 1
    return max(days, 0)


def pro_rata(amount: Decimal, days: Sequence[int], places: int) -> list[Decimal]:
    """`amount` shared by `days` (consecutive stretches of the period, in order; at least one day in all), in units
    of 10^-places (or of the amount's own places, when it has more: the parts must add up to it exactly)."""
    if not days or min(days) < 0 or sum(days) <= 0:
        raise ValueError("pro_rata needs non-negative days, at least one of them positive")
    exponent = amount.normalize().as_tuple().exponent  # NUMERIC(19, 4) reads 900.00 as 900.0000
    assert isinstance(exponent, int), "a finite amount"
    places = max(places, -exponent)
    units = int(amount.scaleb(places))  # exact: the amount has at most `places` places
    whole = sum(days)

    def running(elapsed: int) -> int:
        """The amount's share of the first `elapsed` days, in units, rounded half up: floor(x + 1/2)."""
        return (2 * units * elapsed + whole) // (2 * whole)

    parts = []
    elapsed = 0
    for weight in days:
        parts.append(running(elapsed + weight) - running(elapsed))
        elapsed += weight
    return [Decimal(part).scaleb(-places) for part in parts]
