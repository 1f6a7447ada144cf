"""The cash forecast's rules, apart from the reads (pure functions, so each is tested alone).

- A week is an ISO week, Monday first (UTC dates).
- Cash in: open invoice balances by the week of their due date (`domain.invoices.receivables.expected_cash`; those
  already past due are apart, in no week), and the invoices active recurring invoices will issue, by the week of
  their due date (run date + the customer's payment terms).
- Cash out: approved expenses. The books do not record when an expense is paid: an expense approved in week W is
  taken as paid in week W + P (P = ANALYTICS_EXPENSE_PAYMENT_WEEKS). Expenses still waiting for approval are not
  counted.
- The trailing average: over the T weeks before this one, the invoice payments received and the expenses paid (by
  the same rule) a week on average. Each week's band runs from the lower to the higher of its scheduled net and
  that average net: what is already known on one side, what the recent run-rate says on the other.
- Runway: see RUNWAY_DEFINITION.
"""

from __future__ import annotations

import calendar
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from domain.money import in_minor_units

RUNWAY_DEFINITION = (
    "cash_on_hand / weekly_burn, where weekly_burn is minus the average of the forecast weeks' band_low (the cautious "
    "path: the lower of the scheduled net and the trailing average net); null when cash_on_hand is not given or the "
    "cautious path does not lose cash. cash_runs_out_week is the first week whose balance_low falls below zero."
)
STEP_MONTHS = {"monthly": 1, "quarterly": 3, "yearly": 12}


def week_start(day: date) -> date:
    return day - timedelta(days=day.isoweekday() - 1)


def _nth_run(starts_on: date, step_months: int, n: int) -> date:
    """The n-th run (0 the first) of a month-based schedule: the start's day, or the month's last when shorter."""
    index = starts_on.year * 12 + starts_on.month - 1 + step_months * n
    year, month = index // 12, index % 12 + 1
    return date(year, month, min(starts_on.day, calendar.monthrange(year, month)[1]))


def _runs(frequency: str, starts_on: date) -> Iterator[date]:
    n = 0
    while True:
        if frequency == "weekly":
            yield starts_on + timedelta(weeks=n)
        else:
            yield _nth_run(starts_on, STEP_MONTHS[frequency], n)
        n += 1


def run_dates(
    frequency: str, starts_on: date, first: date, before: date, issued: Collection[date], left: int | None
) -> list[date]:
    """The run dates in [first, before) that have no invoice yet (`issued`), at most `left` of them (None: no
    limit), as `domain.invoices.recurring_lifecycle.calendars` schedules them."""
    found: list[date] = []
    for run_on in _runs(frequency, starts_on):
        if run_on >= before or (left is not None and len(found) >= left):
            break
        if run_on >= first and run_on not in issued:
            found.append(run_on)
    return found


@dataclass(frozen=True)
class Average:
    cash_in: Decimal
    cash_out: Decimal
    net: Decimal


def trailing_average(cash_in: list[Decimal], cash_out: list[Decimal], base: str) -> Average:
    """Weekly means, each rounded half-up to the base currency's minor units; net = in - out of the rounded means."""
    weeks = len(cash_in)
    mean_in = in_minor_units(sum(cash_in, Decimal(0)) / weeks, base)
    mean_out = in_minor_units(sum(cash_out, Decimal(0)) / weeks, base)
    return Average(mean_in, mean_out, mean_in - mean_out)


@dataclass(frozen=True)
class PlannedWeek:
    monday: date
    invoices_due: Decimal
    recurring_due: Decimal
    expenses_payable: Decimal

    @property
    def net(self) -> Decimal:
        return self.invoices_due + self.recurring_due - self.expenses_payable


@dataclass(frozen=True)
class ProjectedWeek:
    week: PlannedWeek
    net: Decimal
    band_low: Decimal
    band_high: Decimal
    balance: Decimal | None
    balance_low: Decimal | None
    balance_high: Decimal | None


def project(weeks: list[PlannedWeek], average_net: Decimal, cash_on_hand: Decimal | None) -> list[ProjectedWeek]:
    """Each week's net and band, and (given the cash on hand) the running balances along the three paths."""
    found = []
    balance = low = high = cash_on_hand
    for week in weeks:
        net = week.net
        band_low, band_high = min(net, average_net), max(net, average_net)
        if cash_on_hand is not None:
            assert balance is not None and low is not None and high is not None
            balance, low, high = balance + net, low + band_low, high + band_high
        found.append(ProjectedWeek(week, net, band_low, band_high, balance, low, high))
    return found


@dataclass(frozen=True)
class RunwayFigures:
    weekly_burn: Decimal | None
    weeks: str | None
    runs_out_week: str | None


def runway(path: list[ProjectedWeek], cash_on_hand: Decimal | None, base: str) -> RunwayFigures:
    if not path:
        return RunwayFigures(None, None, None)
    mean_low = sum((w.band_low for w in path), Decimal(0)) / len(path)
    burn = in_minor_units(-mean_low, base) if mean_low < 0 else None
    weeks = None
    if cash_on_hand is not None and burn:
        weeks = str((max(cash_on_hand, Decimal(0)) / burn).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    out = next((w.week.monday for w in path if w.balance_low is not None and w.balance_low < 0), None)
    label = None
    if out is not None:
        year, number, _ = out.isocalendar()
        label = f"{year}-W{number:02d}"
    return RunwayFigures(burn, weeks, label)
