"""A budget's period grid: consecutive months, quarters or years from a first-of-month start date.

A fiscal year may start in any month, so a quarter or a year is counted from the budget's own start, not from the
calendar's: a year grid from 2026-04-01 runs April to March.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

MONTHS = {"month": 1, "quarter": 3, "year": 12}


def add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s month (`day` is a first of month)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    starts_on: date
    ends_on: date  # exclusive

    def contains(self, day: date) -> bool:
        return self.starts_on <= day < self.ends_on

    def days(self) -> int:
        return (self.ends_on - self.starts_on).days

    def label(self, kind: str) -> str:
        start = self.starts_on
        if kind == "month":
            return f"{start:%Y-%m}"
        last = add_months(self.ends_on, -1)
        return f"{start:%Y-%m} to {last:%Y-%m}"


def grid(kind: str, starts_on: date, count: int) -> list[Period]:
    """The `count` periods of a `kind` grid from `starts_on`."""
    step = MONTHS[kind]
    return [
        Period(add_months(starts_on, step * index), add_months(starts_on, step * (index + 1))) for index in range(count)
    ]


def elapsed_share(period: Period, today: date) -> float:
    """How much of the period has gone by on `today` (0 before it starts, 1 after it ends), counting today."""
    if today < period.starts_on:
        return 0.0
    if today >= period.ends_on:
        return 1.0
    return ((today - period.starts_on).days + 1) / period.days()
